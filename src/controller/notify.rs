//! Notifications: telling people outside Kubernetes what a train did. The
//! engine appends each transition a receiver wants to `status.announcements`
//! (an outbox kept in the Release itself); here the shell finds the receivers
//! that apply, reads their webhook URLs from Secrets in the operator's own
//! namespace, and after each status write hands what a receiver has not had
//! yet to the [`outbox`], which posts it in the background and then records
//! the receiver's mark (the highest `seq` delivered) in the annotation
//! `signalman.dev/notified`. A reconcile never waits for a receiver.

pub mod outbox;

use std::collections::BTreeMap;
use std::fmt;

use futures::Stream;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, store::Writer};
use kube::runtime::watcher;
use serde_json::json;

use super::cache::{Cache, Readable, SECRET_WATCH, trim_secret};
use super::{Context, cached_refusable};
use crate::api::{
    Announcement, NOTIFIED_ANNOTATION, Notifications, Receiver, ReceiverFormat, Release,
    ReleaseStatus, Transition,
};
use crate::engine::{Observations, PolicyObservation};
use outbox::{Delivery, Offer, ReleaseKey};

/// The receivers that apply to a Release: its policy's `notifications` when
/// the policy that applies sets them (an empty list there means none), else
/// the operator's `--notifications`.
pub fn receivers(policy: &PolicyObservation, operator: &Notifications) -> Vec<Receiver> {
    match policy {
        PolicyObservation::Found {
            spec:
                crate::api::ReleasePolicySpec {
                    notifications: Some(n),
                    ..
                },
            ..
        } => n.receivers.clone(),
        _ => operator.receivers.clone(),
    }
}

/// The announcements `receiver` has not had: above its `mark`, of a
/// transition it wants, oldest first.
pub fn pending(
    announcements: &[Announcement],
    receiver: &Receiver,
    mark: i64,
) -> Vec<Announcement> {
    let mut out: Vec<Announcement> = announcements
        .iter()
        .filter(|a| a.seq > mark && receiver.wants(a.transition))
        .cloned()
        .collect();
    out.sort_by_key(|a| a.seq);
    out
}

/// Each receiver's mark from the annotation `signalman.dev/notified`
/// (`{"receiver": seq}`), and what was wrong with it, if anything. Only
/// Signalman writes it; what cannot be read counts as nothing delivered, so
/// a mangled annotation sends the kept announcements again rather than lose
/// one, and the next mark written replaces it whole.
pub fn marks(annotation: Option<&str>) -> (BTreeMap<String, i64>, Option<String>) {
    let Some(text) = annotation else {
        return (BTreeMap::new(), None);
    };
    let object = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(o)) => o,
        Ok(_) | Err(_) => {
            return (
                BTreeMap::new(),
                Some(format!(
                    "annotation {NOTIFIED_ANNOTATION} is not a JSON object of receiver names \
                     and numbers (e.g. {{\"release-channel\": 4}}); read as nothing delivered"
                )),
            );
        }
    };
    let mut out = BTreeMap::new();
    let mut bad = Vec::new();
    for (receiver, seq) in object {
        match seq.as_i64() {
            Some(seq) => {
                out.insert(receiver, seq);
            }
            None => bad.push(receiver),
        }
    }
    let problem = (!bad.is_empty()).then(|| {
        format!(
            "annotation {NOTIFIED_ANNOTATION}: the mark of {} is not a number; read as nothing delivered",
            bad.iter()
                .map(|r| format!("{r:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    (out, problem)
}

/// What is posted to a receiver for one announcement, in its format.
pub fn payload(
    format: ReceiverFormat,
    namespace: &str,
    release: &str,
    a: &Announcement,
) -> serde_json::Value {
    let transition = transition_name(a.transition);
    match format {
        ReceiverFormat::Json => json!({
            "release": release,
            "namespace": namespace,
            "seq": a.seq,
            "transition": transition,
            "at": a.at,
            "service": a.service,
            "message": a.message,
        }),
        ReceiverFormat::Slack => json!({
            "text": format!("{namespace}/{release}: {transition}: {}", a.message),
        }),
    }
}

/// The transition's name as the API writes it (`AwaitingApproval`).
fn transition_name(t: Transition) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{t:?}"))
}

/// A webhook URL. It is a credential (whoever has it can post to the
/// channel): its `Debug` never shows it, and errors that may carry it go
/// through [`WebhookUrl::scrub`].
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// An http or https URL with a host, or why not (without the value).
    pub fn parse(text: &str) -> Result<WebhookUrl, &'static str> {
        let text = text.trim();
        let url = reqwest::Url::parse(text).map_err(|_| "is not a URL")?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err("is not an http or https URL");
        }
        Ok(WebhookUrl(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `text` without this URL, nor its path (which is where webhook
    /// services keep the token), should an error quote them.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(&self.0, "<webhook URL>");
        if let Ok(url) = reqwest::Url::parse(&self.0) {
            let path = url.path();
            if path.len() > 1 {
                out = out.replace(path, "/<path>");
            }
        }
        out
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookUrl(<hidden>)")
    }
}

/// A receiver whose URL could be read.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub receiver: Receiver,
    pub url: WebhookUrl,
}

/// What the operator knows of a Secret a receiver names.
pub enum SecretLookup {
    /// The Secrets of the operator's namespace cannot be watched (why).
    Refused(String),
    Missing,
    /// Its data.
    Found(BTreeMap<String, ByteString>),
}

/// Each receiver's URL, or a sentence naming the receiver, the Secret, the
/// key and the fix (the `ReceiverUnusable` Warning's causes). Secrets live in
/// `namespace`, the operator's own.
pub fn resolve(
    receivers: &[Receiver],
    namespace: &str,
    lookup: impl Fn(&str) -> SecretLookup,
) -> (Vec<Target>, Vec<String>) {
    let mut targets = Vec::new();
    let mut problems = Vec::new();
    for r in receivers {
        let secret = &r.url_from.name;
        let key = r.url_from.key();
        let whose = format!("notification receiver {:?}", r.name);
        match lookup(secret) {
            SecretLookup::Refused(why) => problems.push(format!(
                "{whose}: the operator may not read Secrets in namespace {namespace} ({why}); \
                 grant its ServiceAccount get, list and watch on secrets there (the chart's Role does)"
            )),
            SecretLookup::Missing => problems.push(format!(
                "{whose}: Secret {secret:?} does not exist in namespace {namespace} (the operator's); \
                 create it with the webhook URL under key {key:?}, e.g. kubectl -n {namespace} \
                 create secret generic {secret} --from-literal={key}=<webhook URL>"
            )),
            SecretLookup::Found(data) => {
                let value = data.get(key);
                match value.map(|v| std::str::from_utf8(&v.0).map(WebhookUrl::parse)) {
                    None => problems.push(format!(
                        "{whose}: Secret {secret:?} in namespace {namespace} has no key {key:?}; \
                         put the webhook URL under that key, or set urlFrom.key to the key that holds it"
                    )),
                    Some(Ok(Ok(url))) => targets.push(Target {
                        receiver: r.clone(),
                        url,
                    }),
                    Some(Err(_)) => problems.push(format!(
                        "{whose}: key {key:?} of Secret {secret:?} in namespace {namespace} is not text; \
                         put the webhook URL there"
                    )),
                    Some(Ok(Err(what))) => problems.push(format!(
                        "{whose}: key {key:?} of Secret {secret:?} in namespace {namespace} {what}; \
                         put the webhook URL there (https://...)"
                    )),
                }
            }
        }
    }
    (targets, problems)
}

/// [`resolve`] against the controller's stores.
fn resolve_cached(ctx: &Context, receivers: &[Receiver]) -> (Vec<Target>, Vec<String>) {
    let ns = &ctx.config.operator_namespace;
    resolve(receivers, ns, |name| {
        if let Some(why) = ctx.cache.unavailable.why(SECRET_WATCH) {
            return SecretLookup::Refused(why);
        }
        match ctx.cache.secret(ns, name) {
            Some(s) => SecretLookup::Found(s.data.unwrap_or_default()),
            None => SecretLookup::Missing,
        }
    })
}

/// Fill the observations' receivers (those that apply) and their problems.
pub fn observe(ctx: &Context, policy: &PolicyObservation, obs: &mut Observations) {
    obs.receivers = receivers(policy, &ctx.config.notifications);
    obs.receiver_problems = resolve_cached(ctx, &obs.receivers).1;
}

/// After the status write (or, for a finished Release, instead of one):
/// hand each usable receiver's pending announcements to the outbox without
/// waiting. Nothing pending, nothing handed; a full outbox drops the offer
/// (the next reconcile offers it again).
pub fn hand_off(ctx: &Context, rel: &Release, status: &ReleaseStatus) {
    if status.announcements.is_empty() {
        return;
    }
    let receivers = receivers(&ctx.cache.policy_of(rel), &ctx.config.notifications);
    if receivers.is_empty() {
        return;
    }
    let (marks, problem) = marks(
        rel.annotations()
            .get(NOTIFIED_ANNOTATION)
            .map(String::as_str),
    );
    if let Some(problem) = problem {
        tracing::warn!(%problem, "notification marks");
    }
    let deliveries: Vec<Delivery> = resolve_cached(ctx, &receivers)
        .0
        .into_iter()
        .filter_map(|t| {
            let mark = marks.get(&t.receiver.name).copied().unwrap_or(0);
            let pending = pending(&status.announcements, &t.receiver, mark);
            (!pending.is_empty()).then(|| Delivery {
                receiver: t.receiver.name.clone(),
                format: t.receiver.format.unwrap_or_default(),
                url: t.url,
                pending,
            })
        })
        .collect();
    if deliveries.is_empty() {
        return;
    }
    ctx.notifier.offer(Offer {
        release: ReleaseKey {
            namespace: rel.namespace().unwrap_or_default(),
            name: rel.name_any(),
        },
        uid: rel.uid().unwrap_or_default(),
        marks,
        applying: receivers.into_iter().map(|r| r.name).collect(),
        deliveries,
    });
}

/// The watch of the Secrets in the operator's namespace, into the store
/// `writer` fills. Helm's release records are left out: they are large and
/// never a webhook's. Refusable: an operator that may not read Secrets runs
/// on, and its receivers get a problem saying so.
pub fn watch_secrets(
    ctx: &Context,
    writer: Writer<Secret>,
) -> impl Stream<Item = Result<watcher::Event<Secret>, watcher::Error>> + Send + 'static {
    let ns = &ctx.config.operator_namespace;
    let config = watcher::Config::default()
        .fields("type!=helm.sh/release.v1")
        .page_size(super::LIST_PAGE);
    cached_refusable(
        ctx,
        writer,
        vec![(
            ns.clone(),
            format!("{SECRET_WATCH} in {ns}"),
            Api::namespaced(ctx.client.clone(), ns),
        )],
        config,
        trim_secret,
        Some(SECRET_WATCH),
    )
}

/// The Releases a change of Secret `secret` wakes: all of them when a
/// receiver that may apply (the operator's, or any policy's) names it, so
/// that a Secret created or fixed clears the Warning and delivers what waits.
pub fn woken_by(cache: &Cache, operator: &Notifications, secret: &str) -> Vec<ObjectRef<Readable>> {
    let named = |n: &Notifications| n.receivers.iter().any(|r| r.url_from.name == secret);
    let by_policy = || {
        cache.policies.state().iter().any(|p| {
            p.data["spec"]["notifications"]["receivers"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| r["urlFrom"]["name"] == secret))
        })
    };
    if !named(operator) && !by_policy() {
        return Vec::new();
    }
    cache
        .releases
        .state()
        .iter()
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// `--notifications`: JSON of `Notifications` (the policy's field), checked
/// as the API server checks the policy's. Blank is no receivers.
pub fn parse_flag(text: &str) -> Result<Notifications, String> {
    const EXAMPLE: &str = r#"{"receivers": [{"name": "release-channel", "urlFrom": {"name": "signalman-webhooks", "key": "url"}, "format": "slack"}]}"#;
    if text.trim().is_empty() {
        return Ok(Notifications::default());
    }
    let n: Notifications = serde_path_to_error::deserialize(
        &mut serde_json::Deserializer::from_str(text),
    )
    .map_err(|e| {
        let at = e.path().to_string();
        let at = if at == "." {
            String::new()
        } else {
            format!("{at}: ")
        };
        format!("{at}{}; expected JSON like {EXAMPLE}", e.inner())
    })?;
    if n.receivers.len() > 10 {
        return Err(format!(
            "receivers: at most 10 receivers, not {}",
            n.receivers.len()
        ));
    }
    for (i, r) in n.receivers.iter().enumerate() {
        if r.name.is_empty() || r.name.len() > 63 {
            return Err(format!(
                "receivers[{i}].name: give a name of 1 to 63 characters, e.g. release-channel"
            ));
        }
        if r.url_from.name.is_empty() {
            return Err(format!(
                "receivers[{i}].urlFrom.name: name the Secret, in the operator's namespace, that holds the webhook URL"
            ));
        }
        if n.receivers[..i].iter().any(|o| o.name == r.name) {
            return Err(format!(
                "receivers[{i}].name: {:?} is used twice; receiver names must be unique",
                r.name
            ));
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ReleasePolicySpec, SecretKey};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn receiver(name: &str, on: &[Transition]) -> Receiver {
        Receiver {
            name: name.to_owned(),
            url_from: SecretKey {
                name: format!("{name}-hook"),
                key: None,
            },
            format: None,
            on: on.to_vec(),
        }
    }

    fn ann(seq: i64, transition: Transition) -> Announcement {
        Announcement {
            seq,
            transition,
            at: Time("2026-11-26T10:00:00Z".parse().unwrap()),
            service: None,
            message: format!("message {seq}"),
        }
    }

    #[test]
    fn pending_is_what_is_above_the_mark_and_wanted_in_order() {
        let anns = vec![
            ann(3, Transition::Held),
            ann(1, Transition::Started),
            ann(2, Transition::AwaitingApproval),
            ann(4, Transition::Succeeded),
        ];
        let all = receiver("all", &[]);
        let seqs = |v: Vec<Announcement>| v.iter().map(|a| a.seq).collect::<Vec<_>>();
        assert_eq!(seqs(pending(&anns, &all, 0)), [1, 2, 3, 4]);
        assert_eq!(seqs(pending(&anns, &all, 2)), [3, 4]);
        assert_eq!(seqs(pending(&anns, &all, 4)), Vec::<i64>::new());
        let ends = receiver("ends", &[Transition::Succeeded, Transition::Started]);
        assert_eq!(seqs(pending(&anns, &ends, 0)), [1, 4]);
        assert_eq!(seqs(pending(&anns, &ends, 1)), [4]);
    }

    #[test]
    fn marks_are_read_and_a_malformed_annotation_is_nothing_delivered() {
        assert_eq!(marks(None), (BTreeMap::new(), None));
        let (m, p) = marks(Some(r#"{"slack": 4, "json": 2}"#));
        assert_eq!(m, BTreeMap::from([("json".into(), 2), ("slack".into(), 4)]));
        assert_eq!(p, None);

        let (m, p) = marks(Some("slack=4"));
        assert!(m.is_empty());
        let p = p.expect("a problem");
        assert!(
            p.contains(NOTIFIED_ANNOTATION) && p.contains("not a JSON object"),
            "{p}"
        );

        let (m, p) = marks(Some("[1, 2]"));
        assert!(m.is_empty() && p.is_some());

        // One bad entry costs only that receiver's mark.
        let (m, p) = marks(Some(r#"{"slack": "4", "json": 2}"#));
        assert_eq!(m, BTreeMap::from([("json".into(), 2)]));
        assert!(p.expect("a problem").contains("\"slack\""));
    }

    #[test]
    fn payloads_have_the_two_formats_shapes() {
        let mut a = ann(7, Transition::AwaitingApproval);
        a.service = Some("payments-api".into());
        a.message = "payments-api waits for an approval of step 3".into();
        let j = payload(ReceiverFormat::Json, "shop", "checkout-v5", &a);
        assert_eq!(
            j,
            json!({
                "release": "checkout-v5",
                "namespace": "shop",
                "seq": 7,
                "transition": "AwaitingApproval",
                "at": "2026-11-26T10:00:00Z",
                "service": "payments-api",
                "message": "payments-api waits for an approval of step 3",
            })
        );
        let s = payload(ReceiverFormat::Slack, "shop", "checkout-v5", &a);
        assert_eq!(
            s,
            json!({"text": "shop/checkout-v5: AwaitingApproval: payments-api waits for an approval of step 3"})
        );
        let j = payload(
            ReceiverFormat::Json,
            "shop",
            "r",
            &ann(1, Transition::Started),
        );
        assert_eq!(j["service"], serde_json::Value::Null);
    }

    #[test]
    fn the_policys_receivers_apply_else_the_operators() {
        let operator = Notifications {
            receivers: vec![receiver("ops", &[])],
        };
        let names = |v: Vec<Receiver>| v.into_iter().map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(
            names(receivers(&PolicyObservation::None, &operator)),
            ["ops"]
        );
        let found = |n: Option<Notifications>| PolicyObservation::Found {
            name: "default".into(),
            spec: ReleasePolicySpec {
                notifications: n,
                ..Default::default()
            },
        };
        assert_eq!(names(receivers(&found(None), &operator)), ["ops"]);
        let team = Notifications {
            receivers: vec![receiver("team", &[])],
        };
        assert_eq!(names(receivers(&found(Some(team)), &operator)), ["team"]);
        // A policy that says "none" means none.
        assert!(receivers(&found(Some(Notifications::default())), &operator).is_empty());
        let missing = PolicyObservation::Missing {
            name: "p".into(),
            named_by: "spec.policy".into(),
        };
        assert_eq!(names(receivers(&missing, &operator)), ["ops"]);
    }

    fn secret(pairs: &[(&str, &[u8])]) -> BTreeMap<String, ByteString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
            .collect()
    }

    #[test]
    fn unusable_receivers_name_the_secret_the_key_and_the_fix_never_the_url() {
        let url = "https://hooks.example/services/T000/B000/XXXSECRET";
        let mut custom_key = receiver("custom", &[]);
        custom_key.url_from.key = Some("webhook".into());
        let rs = vec![
            receiver("ok", &[]),
            receiver("absent", &[]),
            receiver("nokey", &[]),
            receiver("garbage", &[]),
            custom_key,
        ];
        let (targets, problems) = resolve(&rs, "signalman-system", |name| match name {
            "ok-hook" => SecretLookup::Found(secret(&[("url", url.as_bytes())])),
            "nokey-hook" => SecretLookup::Found(secret(&[("other", b"x")])),
            "garbage-hook" => SecretLookup::Found(secret(&[("url", b"not a url at all")])),
            "custom-hook" => SecretLookup::Found(secret(&[("webhook", b"http://10.0.0.1:80/x")])),
            _ => SecretLookup::Missing,
        });
        assert_eq!(
            targets
                .iter()
                .map(|t| t.receiver.name.as_str())
                .collect::<Vec<_>>(),
            ["ok", "custom"]
        );
        assert_eq!(targets[0].url.as_str(), url);
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[0].contains("\"absent\"")
                && problems[0].contains(
                    "Secret \"absent-hook\" does not exist in namespace signalman-system"
                )
                && problems[0].contains("--from-literal=url="),
            "{}",
            problems[0]
        );
        assert!(
            problems[1].contains("Secret \"nokey-hook\"")
                && problems[1].contains("no key \"url\"")
                && problems[1].contains("urlFrom.key"),
            "{}",
            problems[1]
        );
        assert!(problems[2].contains("is not a URL"), "{}", problems[2]);
        assert!(!format!("{targets:?}").contains("XXXSECRET"));

        let (targets, problems) = resolve(&rs[..1], "ops", |_| {
            SecretLookup::Refused("403 Forbidden".into())
        });
        assert!(targets.is_empty());
        assert!(
            problems[0].contains("may not read Secrets in namespace ops"),
            "{problems:?}"
        );
    }

    #[test]
    fn scrubbing_removes_the_url_and_its_path() {
        let url = WebhookUrl::parse("https://hooks.example/services/T000/XXXSECRET").unwrap();
        let e = "error sending request for url (https://hooks.example/services/T000/XXXSECRET): refused; path /services/T000/XXXSECRET";
        let s = url.scrub(e);
        assert!(!s.contains("XXXSECRET"), "{s}");
        assert!(s.contains("refused"), "{s}");
        assert!(WebhookUrl::parse("ftp://x/y").is_err());
        assert!(WebhookUrl::parse("mailto:ops@example.org").is_err());
        assert!(WebhookUrl::parse("/services/T000").is_err());
        assert!(!format!("{url:?}").contains("hooks.example"));
    }

    #[test]
    fn the_flag_is_json_of_notifications_and_bad_values_name_the_field() {
        let n = parse_flag(
            r#"{"receivers": [{"name": "ops", "urlFrom": {"name": "hooks"}, "format": "slack", "on": ["Breach", "RolledBack"]}]}"#,
        )
        .unwrap();
        assert_eq!(n.receivers[0].format, Some(ReceiverFormat::Slack));
        assert_eq!(n.receivers[0].url_from.key(), "url");
        assert_eq!(parse_flag("  ").unwrap(), Notifications::default());
        let e = parse_flag(r#"{"receivers": [{"name": "ops"}]}"#).unwrap_err();
        assert!(
            e.starts_with("receivers[0]") && e.contains("urlFrom"),
            "{e}"
        );
        let e = parse_flag(
            r#"{"receivers": [{"name": "ops", "urlFrom": {"name": "h"}, "format": "teams"}]}"#,
        )
        .unwrap_err();
        assert!(e.contains("receivers[0].format"), "{e}");
        let e = parse_flag(
            r#"{"receivers": [{"name": "ops", "urlFrom": {"name": "h"}, "on": ["Deployed"]}]}"#,
        )
        .unwrap_err();
        assert!(e.contains("receivers[0].on"), "{e}");
        let twice = r#"{"receivers": [{"name": "a", "urlFrom": {"name": "h"}}, {"name": "a", "urlFrom": {"name": "h"}}]}"#;
        assert!(parse_flag(twice).unwrap_err().contains("receivers[1].name"));
        assert!(
            parse_flag("not json")
                .unwrap_err()
                .contains("expected JSON like")
        );
    }
}
