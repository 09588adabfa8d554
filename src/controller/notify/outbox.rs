//! The background sender of notifications. Reconciles offer what each
//! receiver has not had ([`Notifier::offer`], never waiting); one task keeps,
//! per Release and receiver, a queue in `seq` order and posts one
//! announcement at a time, retrying a failure with exponential backoff and
//! jitter, and after each success writes the receiver's mark into the
//! annotation `signalman.dev/notified` (a merge patch of the whole annotation,
//! one at a time per Release, so the marks of two receivers never overwrite
//! each other, and not while the Release is being reconciled).
//!
//! Delivery is at least once: the mark is written after the receiver
//! answered, so a crash between the two sends that announcement again; a
//! restart otherwise resumes from the marks and sends nothing twice.
//!
//! What to do next is decided by [`Outbox`], plain data and a clock passed
//! in; [`run`] does the posting, the patching and the Events.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource};
use serde_json::json;
use tokio::sync::mpsc;

use super::{WebhookUrl, payload};
use crate::api::{Announcement, NOTIFIED_ANNOTATION, ReceiverFormat, Release};
use crate::controller::cache::Readable;
use crate::health::Probe;
use crate::metrics::Metrics;

/// Offers waiting for the sender; beyond this a reconcile's offer is
/// dropped (and made again by the next reconcile) rather than waited for.
const INBOX: usize = 4096;
/// How long one POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// The first retry's delay; each further failure doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Marks of receivers delivered within this long are written in one patch.
const MARK_DELAY: Duration = Duration::from_millis(200);
/// A Release whose queues are empty and marks written is forgotten after
/// this long (its annotation, seen by then, says what was delivered).
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// While delivering to a receiver keeps failing, one Warning Event per this long.
const WARN_EVERY: Duration = Duration::from_secs(3600);
/// How long a mark waits for a running reconcile of its Release to end.
const MARK_WAITS_AT_MOST: Duration = Duration::from_secs(5);

/// A Release, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReleaseKey {
    pub namespace: String,
    pub name: String,
}

/// What a reconcile hands over for one Release.
#[derive(Clone, Debug)]
pub struct Offer {
    pub release: ReleaseKey,
    pub uid: String,
    /// The marks its annotation holds.
    pub marks: BTreeMap<String, i64>,
    /// The names of every receiver that applies now (a queue of another is dropped).
    pub applying: Vec<String>,
    pub deliveries: Vec<Delivery>,
}

/// What one receiver has not had yet.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub receiver: String,
    pub format: ReceiverFormat,
    pub url: WebhookUrl,
    /// Above the receiver's mark, oldest first.
    pub pending: Vec<Announcement>,
}

/// Something for [`run`] to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Work {
    /// POST `announcement` to the receiver (attempt 1, 2, ...).
    Post {
        release: ReleaseKey,
        uid: String,
        receiver: String,
        format: ReceiverFormat,
        url: WebhookUrl,
        announcement: Announcement,
        attempt: u32,
    },
    /// Write these marks (every receiver's) into the Release's annotation.
    Mark {
        release: ReleaseKey,
        uid: String,
        marks: BTreeMap<String, i64>,
    },
}

/// How a piece of [`Work`] went.
#[derive(Clone, Debug, PartialEq)]
pub enum Done {
    Posted {
        release: ReleaseKey,
        receiver: String,
        seq: i64,
        /// The error, without the URL.
        error: Option<String>,
    },
    Marked {
        release: ReleaseKey,
        marks: BTreeMap<String, i64>,
        result: MarkResult,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkResult {
    Written,
    Failed,
    /// The Release is gone (or is another one by now).
    Gone,
}

/// A failed delivery worth a Warning Event.
#[derive(Clone, Debug, PartialEq)]
pub struct Warning {
    pub release: ReleaseKey,
    pub uid: String,
    pub receiver: String,
    pub seq: i64,
    pub attempt: u32,
    pub error: String,
    pub retry_in: Duration,
}

#[derive(Debug)]
struct Queue {
    /// Highest `seq` delivered (or marked in the annotation).
    done: i64,
    pending: BTreeMap<i64, Announcement>,
    format: ReceiverFormat,
    url: WebhookUrl,
    in_flight: bool,
    /// Failed attempts of the first pending announcement.
    failures: u32,
    retry_at: Option<Instant>,
    warned_at: Option<Instant>,
}

#[derive(Debug)]
struct Outgoing {
    uid: String,
    /// The marks last seen in (or written to) the annotation.
    marked: BTreeMap<String, i64>,
    queues: BTreeMap<String, Queue>,
    mark_due: Option<Instant>,
    marking: bool,
    mark_failures: u32,
    /// Since when nothing is left to do.
    quiet_since: Option<Instant>,
}

impl Outgoing {
    fn new(uid: String) -> Self {
        Outgoing {
            uid,
            marked: BTreeMap::new(),
            queues: BTreeMap::new(),
            mark_due: None,
            marking: false,
            mark_failures: 0,
            quiet_since: None,
        }
    }

    /// The annotation's marks with what was delivered since.
    fn marks(&self) -> BTreeMap<String, i64> {
        let mut m = self.marked.clone();
        for (r, q) in &self.queues {
            if q.done > 0 {
                let e = m.entry(r.clone()).or_insert(0);
                *e = (*e).max(q.done);
            }
        }
        m
    }

    fn failing(&self) -> bool {
        self.queues.values().any(|q| q.failures > 0) || self.mark_failures > 0
    }

    fn settle(&mut self, now: Instant) {
        let quiet = !self.marking
            && self.mark_due.is_none()
            && self
                .queues
                .values()
                .all(|q| !q.in_flight && q.pending.is_empty());
        self.quiet_since = match (quiet, self.quiet_since) {
            (true, Some(t)) => Some(t),
            (true, None) => Some(now),
            (false, _) => None,
        };
    }
}

/// Per Release and receiver: what is left to send, what is in flight, when
/// to retry, and which marks are still to be written.
#[derive(Debug, Default)]
pub struct Outbox {
    releases: BTreeMap<ReleaseKey, Outgoing>,
}

impl Outbox {
    /// Take in a reconcile's offer. What was delivered already (by the
    /// annotation or by this process) is not queued again.
    pub fn offer(&mut self, offer: Offer, now: Instant) {
        let o = self
            .releases
            .entry(offer.release.clone())
            .or_insert_with(|| Outgoing::new(offer.uid.clone()));
        if o.uid != offer.uid {
            // The same name, another Release: nothing of the old one holds.
            *o = Outgoing::new(offer.uid.clone());
        }
        for (r, seq) in &offer.marks {
            let e = o.marked.entry(r.clone()).or_insert(0);
            *e = (*e).max(*seq);
        }
        o.queues.retain(|r, _| offer.applying.contains(r));
        for d in offer.deliveries {
            let seen = o.marked.get(&d.receiver).copied().unwrap_or(0);
            let q = o.queues.entry(d.receiver.clone()).or_insert_with(|| Queue {
                done: 0,
                pending: BTreeMap::new(),
                format: d.format,
                url: d.url.clone(),
                in_flight: false,
                failures: 0,
                retry_at: None,
                warned_at: None,
            });
            q.done = q.done.max(seen);
            q.format = d.format;
            q.url = d.url;
            for a in d.pending {
                if a.seq > q.done {
                    q.pending.entry(a.seq).or_insert(a);
                }
            }
            let done = q.done;
            q.pending.retain(|seq, _| *seq > done);
        }
        o.settle(now);
    }

    /// What to start now. `gone` says whether a Release no longer exists (or
    /// is another one); it is asked only of Releases that are failing or
    /// quiet, so a Release deleted right after its last transition still
    /// gets that one sent once.
    pub fn due(&mut self, now: Instant, gone: impl Fn(&ReleaseKey, &str) -> bool) -> Vec<Work> {
        self.releases.retain(|key, o| {
            let forgotten = o
                .quiet_since
                .is_some_and(|t| now.duration_since(t) >= FORGET_AFTER);
            let asked = o.failing() || o.quiet_since.is_some();
            let dropped = forgotten || (asked && gone(key, &o.uid));
            !dropped
        });
        let mut work = Vec::new();
        for (key, o) in &mut self.releases {
            for (receiver, q) in &mut o.queues {
                if q.in_flight || q.retry_at.is_some_and(|t| t > now) {
                    continue;
                }
                let Some(a) = q.pending.values().next() else {
                    continue;
                };
                q.in_flight = true;
                work.push(Work::Post {
                    release: key.clone(),
                    uid: o.uid.clone(),
                    receiver: receiver.clone(),
                    format: q.format,
                    url: q.url.clone(),
                    announcement: a.clone(),
                    attempt: q.failures + 1,
                });
            }
            if !o.marking && o.mark_due.is_some_and(|t| t <= now) {
                o.marking = true;
                o.mark_due = None;
                work.push(Work::Mark {
                    release: key.clone(),
                    uid: o.uid.clone(),
                    marks: o.marks(),
                });
            }
            o.settle(now);
        }
        work
    }

    /// Take in how a piece of work went; `jitter` in [0, 1) spreads the
    /// retry. Returns the Warning to publish, when one is due.
    pub fn finished(&mut self, done: Done, now: Instant, jitter: f64) -> Option<Warning> {
        let key = match &done {
            Done::Posted { release, .. } | Done::Marked { release, .. } => release.clone(),
        };
        let o = self.releases.get_mut(&key)?;
        let mut warning = None;
        match done {
            Done::Posted {
                receiver,
                seq,
                error,
                ..
            } => {
                let q = o.queues.get_mut(&receiver)?;
                q.in_flight = false;
                match error {
                    None => {
                        q.done = q.done.max(seq);
                        let d = q.done;
                        q.pending.retain(|s, _| *s > d);
                        q.failures = 0;
                        q.retry_at = None;
                        q.warned_at = None;
                        o.mark_due.get_or_insert(now + MARK_DELAY);
                    }
                    Some(error) => {
                        q.failures += 1;
                        let retry_in = backoff(q.failures, jitter);
                        q.retry_at = Some(now + retry_in);
                        let warn = q
                            .warned_at
                            .is_none_or(|t| now.duration_since(t) >= WARN_EVERY);
                        if warn {
                            q.warned_at = Some(now);
                            warning = Some(Warning {
                                release: key.clone(),
                                uid: o.uid.clone(),
                                receiver,
                                seq,
                                attempt: q.failures,
                                error,
                                retry_in,
                            });
                        }
                    }
                }
            }
            Done::Marked { marks, result, .. } => {
                o.marking = false;
                match result {
                    MarkResult::Written => {
                        o.mark_failures = 0;
                        for (r, seq) in marks {
                            let e = o.marked.entry(r).or_insert(0);
                            *e = (*e).max(seq);
                        }
                    }
                    MarkResult::Failed => {
                        o.mark_failures += 1;
                        o.mark_due = Some(now + backoff(o.mark_failures, jitter));
                    }
                    MarkResult::Gone => {
                        self.releases.remove(&key);
                        return None;
                    }
                }
            }
        }
        o.settle(now);
        warning
    }

    /// When [`Outbox::due`] next has something to start (`None`: only an
    /// offer or a finished piece of work can change that).
    pub fn next_wake(&self) -> Option<Instant> {
        self.releases
            .values()
            .flat_map(|o| {
                let retries = o
                    .queues
                    .values()
                    .filter(|q| !q.in_flight && !q.pending.is_empty())
                    .filter_map(|q| q.retry_at);
                let mark = o.mark_due.filter(|_| !o.marking);
                let forget = o.quiet_since.map(|t| t + FORGET_AFTER);
                retries.chain(mark).chain(forget)
            })
            .min()
    }
}

/// The delay before attempt `failures + 1`: 1 s doubling per failure up to
/// 5 min, each spread by ±25 % (`jitter` in [0, 1)) so that receivers that
/// failed together do not retry together.
pub fn backoff(failures: u32, jitter: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let base = FIRST_BACKOFF.saturating_mul(1 << exp).min(MAX_BACKOFF);
    base.mul_f64(0.75 + 0.5 * jitter.clamp(0.0, 1.0))
        .min(MAX_BACKOFF)
}

/// A number in [0, 1) that differs between calls and processes.
fn jitter() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    let hash = (nanos ^ n.rotate_left(32))
        .to_le_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    (hash % 10_000) as f64 / 10_000.0
}

/// The process's sender: the reconciles' side of it, and what [`run`] needs.
pub struct Notifier {
    inbox: mpsc::Sender<Offer>,
    waiting: Mutex<Option<mpsc::Receiver<Offer>>>,
    /// The newest controller's Releases (a shard's controller restarts with
    /// new stores), to drop the queues of Releases that are gone.
    releases: Arc<RwLock<Option<Store<Readable>>>>,
}

impl Default for Notifier {
    fn default() -> Self {
        let (inbox, waiting) = mpsc::channel(INBOX);
        Notifier {
            inbox,
            waiting: Mutex::new(Some(waiting)),
            releases: Arc::default(),
        }
    }
}

impl Notifier {
    /// Hand an offer over without waiting; a full inbox drops it.
    pub fn offer(&self, offer: Offer) {
        if let Err(e) = self.inbox.try_send(offer) {
            let r = e.into_inner().release;
            tracing::warn!(
                release = %format!("{}/{}", r.namespace, r.name),
                "the notification sender is behind; what this reconcile offered waits for the next one"
            );
        }
    }

    /// Start the sender (once per process) and follow `releases`.
    pub fn start(
        &self,
        client: Client,
        metrics: Metrics,
        reporter: Reporter,
        probe: Probe,
        releases: Store<Readable>,
    ) {
        *self.releases.write().unwrap_or_else(|e| e.into_inner()) = Some(releases);
        let Some(inbox) = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let http = match reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "no HTTP client: notifications are not sent");
                return;
            }
        };
        let deps = Deps {
            client,
            http,
            metrics,
            reporter,
            probe,
            releases: self.releases.clone(),
        };
        tokio::spawn(run(inbox, deps));
    }
}

#[derive(Clone)]
struct Deps {
    client: Client,
    http: reqwest::Client,
    metrics: Metrics,
    reporter: Reporter,
    /// Which reconciles run (see [`mark`]).
    probe: Probe,
    releases: Arc<RwLock<Option<Store<Readable>>>>,
}

impl Deps {
    fn gone(&self, key: &ReleaseKey, uid: &str) -> bool {
        let Some(store) = self
            .releases
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return false;
        };
        match store.get(&ObjectRef::new(&key.name).within(&key.namespace)) {
            Some(r) => r.meta().uid.as_deref().is_some_and(|u| u != uid),
            None => true,
        }
    }
}

/// The sender: takes offers, starts what [`Outbox::due`] says, and takes
/// back how it went, until the process ends.
async fn run(mut inbox: mpsc::Receiver<Offer>, deps: Deps) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut outbox = Outbox::default();
    loop {
        for work in outbox.due(Instant::now(), |k, uid| deps.gone(k, uid)) {
            tokio::spawn(perform(work, deps.clone(), done_tx.clone()));
        }
        let wake = outbox.next_wake().map(tokio::time::Instant::from_std);
        tokio::select! {
            offer = inbox.recv() => match offer {
                Some(offer) => outbox.offer(offer, Instant::now()),
                None => return,
            },
            Some(done) = done_rx.recv() => {
                if let Some(w) = outbox.finished(done, Instant::now(), jitter()) {
                    tokio::spawn(warn(w, deps.clone()));
                }
            }
            () = sleep_until(wake) => {}
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn perform(work: Work, deps: Deps, done: mpsc::UnboundedSender<Done>) {
    let result = match work {
        Work::Post {
            release,
            receiver,
            format,
            url,
            announcement,
            ..
        } => {
            let body = payload(format, &release.namespace, &release.name, &announcement);
            let error = post(&deps.http, &url, &body).await.err();
            let result = if error.is_some() { "failed" } else { "sent" };
            deps.metrics.notified(&receiver, result);
            match &error {
                None => tracing::info!(
                    release = %format!("{}/{}", release.namespace, release.name),
                    %receiver, seq = announcement.seq, "notification sent"
                ),
                Some(e) => tracing::warn!(
                    release = %format!("{}/{}", release.namespace, release.name),
                    %receiver, seq = announcement.seq, error = %e, "notification failed"
                ),
            }
            Done::Posted {
                release,
                receiver,
                seq: announcement.seq,
                error,
            }
        }
        Work::Mark {
            release,
            uid,
            marks,
        } => {
            let result = mark(&deps, &release, &uid, &marks).await;
            Done::Marked {
                release,
                marks,
                result,
            }
        }
    };
    let _ = done.send(result);
}

/// POST `body`; a non-2xx answer is an error. Errors never carry the URL.
async fn post(
    http: &reqwest::Client,
    url: &WebhookUrl,
    body: &serde_json::Value,
) -> Result<(), String> {
    let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    let res = http
        .post(url.as_str())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(bytes)
        .send()
        .await;
    let res = match res {
        Ok(r) => r,
        Err(e) => {
            // reqwest's own words are terse ("error sending request"); its
            // causes say what happened ("Connection refused").
            let e = e.without_url();
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text.push_str(": ");
                text.push_str(&c.to_string());
                cause = c.source();
            }
            return Err(url.scrub(&text));
        }
    };
    let status = res.status();
    if status.is_success() {
        return Ok(());
    }
    Err(format!("the receiver answered {status}"))
}

/// Write `marks` into the Release's annotation (the uid a precondition:
/// never onto another Release of the same name).
async fn mark(
    deps: &Deps,
    release: &ReleaseKey,
    uid: &str,
    marks: &BTreeMap<String, i64>,
) -> MarkResult {
    let Ok(value) = serde_json::to_string(marks) else {
        return MarkResult::Failed;
    };
    let api: Api<DynamicObject> = Api::namespaced_with(
        deps.client.clone(),
        &release.namespace,
        &ApiResource::erase::<Release>(&()),
    );
    let body = json!({"metadata": {"uid": uid, "annotations": {NOTIFIED_ANNOTATION: value}}});
    // A reconcile of this Release writes its status over the version it
    // read: a mark landing in between would make that write fail (and the
    // decision be made again). Marks wait for it to end.
    let what = format!("{}/{}", release.namespace, release.name);
    let waiting = Instant::now();
    while deps.probe.reconciling(&what) && waiting.elapsed() < MARK_WAITS_AT_MOST {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let params = PatchParams {
        field_manager: Some(crate::api::FIELD_MANAGER.to_owned()),
        ..Default::default()
    };
    match api
        .patch(&release.name, &params, &Patch::Merge(&body))
        .await
    {
        Ok(_) => {
            deps.metrics.wrote("Release", "patch");
            MarkResult::Written
        }
        // 404: deleted; 409 or 422: the uid is not this Release's any more.
        Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409 | 422) => MarkResult::Gone,
        Err(e) => {
            tracing::warn!(
                release = %format!("{}/{}", release.namespace, release.name),
                error = %e, "writing the notification marks; retrying"
            );
            MarkResult::Failed
        }
    }
}

/// The Warning Event of a failed delivery: names the receiver, never the URL.
async fn warn(w: Warning, deps: Deps) {
    let reference = ObjectReference {
        api_version: Some(Release::api_version(&()).into_owned()),
        kind: Some(Release::kind(&()).into_owned()),
        namespace: Some(w.release.namespace.clone()),
        name: Some(w.release.name.clone()),
        uid: Some(w.uid.clone()),
        ..Default::default()
    };
    let note = format!(
        "notifying receiver {:?} of announcement {} failed (attempt {}): {}; retrying in {}s, \
         and with growing delays after that",
        w.receiver,
        w.seq,
        w.attempt,
        w.error,
        w.retry_in.as_secs().max(1)
    );
    let event = Event {
        type_: EventType::Warning,
        reason: "NotificationFailed".into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Notify".into(),
        secondary: None,
    };
    match Recorder::new(deps.client.clone(), deps.reporter.clone())
        .publish(&event, &reference)
        .await
    {
        Ok(()) => deps.metrics.wrote("Event", "create"),
        Err(e) => tracing::warn!(error = %e, "publishing an event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Transition;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn key() -> ReleaseKey {
        ReleaseKey {
            namespace: "shop".into(),
            name: "train".into(),
        }
    }

    fn ann(seq: i64) -> Announcement {
        Announcement {
            seq,
            transition: Transition::Started,
            at: Time("2026-11-26T10:00:00Z".parse().unwrap()),
            service: None,
            message: format!("m{seq}"),
        }
    }

    fn url() -> WebhookUrl {
        WebhookUrl::parse("http://127.0.0.1:9/hook").unwrap()
    }

    fn offer(marks: &[(&str, i64)], pending: &[(&str, &[i64])]) -> Offer {
        Offer {
            release: key(),
            uid: "u1".into(),
            marks: marks.iter().map(|(r, s)| (r.to_string(), *s)).collect(),
            applying: pending.iter().map(|(r, _)| r.to_string()).collect(),
            deliveries: pending
                .iter()
                .map(|(r, seqs)| Delivery {
                    receiver: r.to_string(),
                    format: ReceiverFormat::Json,
                    url: url(),
                    pending: seqs.iter().map(|s| ann(*s)).collect(),
                })
                .collect(),
        }
    }

    /// (receiver, seq) of each Post, and whether a Mark was asked (its marks).
    fn posts(work: &[Work]) -> Vec<(String, i64)> {
        work.iter()
            .filter_map(|w| match w {
                Work::Post {
                    receiver,
                    announcement,
                    ..
                } => Some((receiver.clone(), announcement.seq)),
                Work::Mark { .. } => None,
            })
            .collect()
    }

    fn marks_written(work: &[Work]) -> Option<BTreeMap<String, i64>> {
        work.iter().find_map(|w| match w {
            Work::Mark { marks, .. } => Some(marks.clone()),
            Work::Post { .. } => None,
        })
    }

    fn posted(receiver: &str, seq: i64, error: Option<&str>) -> Done {
        Done::Posted {
            release: key(),
            receiver: receiver.into(),
            seq,
            error: error.map(str::to_owned),
        }
    }

    fn never_gone(_: &ReleaseKey, _: &str) -> bool {
        false
    }

    #[test]
    fn one_at_a_time_in_order_per_receiver_and_each_only_once() {
        let t0 = Instant::now();
        let mut o = Outbox::default();
        o.offer(offer(&[], &[("chat", &[2, 1]), ("audit", &[1, 2])]), t0);
        let w = o.due(t0, never_gone);
        assert_eq!(posts(&w), [("audit".into(), 1), ("chat".into(), 1)]);
        // In flight: nothing more for those receivers, even when offered again.
        o.offer(offer(&[], &[("chat", &[1, 2, 3])]), t0);
        assert!(o.due(t0, never_gone).is_empty());
        assert_eq!(o.finished(posted("chat", 1, None), t0, 0.5), None);
        assert_eq!(posts(&o.due(t0, never_gone)), [("chat".into(), 2)]);
        o.finished(posted("chat", 2, None), t0, 0.5);
        o.finished(posted("audit", 1, None), t0, 0.5);
        let w = o.due(t0, never_gone);
        // chat: 3 next; audit was offered 1 and 2 only, and chat's re-offer
        // (which dropped audit from `applying`) ended audit's queue.
        assert_eq!(posts(&w), [("chat".into(), 3)]);
        // The marks wait a moment, to go out in one patch.
        assert_eq!(marks_written(&w), None);
        let later = t0 + MARK_DELAY;
        o.finished(posted("chat", 3, None), later, 0.5);
        let w = o.due(later, never_gone);
        assert_eq!(
            marks_written(&w),
            Some(BTreeMap::from([("chat".into(), 3)]))
        );
        // An offer made from a Release the store still shows unmarked sends nothing again.
        o.offer(offer(&[], &[("chat", &[1, 2, 3])]), later);
        assert!(posts(&o.due(later, never_gone)).is_empty());
    }

    #[test]
    fn a_restart_resumes_from_the_marks() {
        let t0 = Instant::now();
        let mut fresh = Outbox::default();
        fresh.offer(offer(&[("chat", 2)], &[("chat", &[1, 2, 3, 4])]), t0);
        assert_eq!(posts(&fresh.due(t0, never_gone)), [("chat".into(), 3)]);
    }

    #[test]
    fn failures_retry_with_growing_delays_and_warn_once_an_hour() {
        let t0 = Instant::now();
        let mut o = Outbox::default();
        o.offer(offer(&[], &[("chat", &[1, 2])]), t0);
        assert_eq!(posts(&o.due(t0, never_gone)), [("chat".into(), 1)]);
        let w = o
            .finished(posted("chat", 1, Some("connection refused")), t0, 0.0)
            .expect("the first failure warns");
        assert_eq!((w.receiver.as_str(), w.seq, w.attempt), ("chat", 1, 1));
        assert_eq!(w.retry_in, Duration::from_millis(750));
        assert!(o.due(t0, never_gone).is_empty(), "not before the delay");
        assert_eq!(o.next_wake(), Some(t0 + w.retry_in));
        let t1 = t0 + w.retry_in;
        let w1 = o.due(t1, never_gone);
        assert!(
            matches!(&w1[..], [Work::Post { attempt: 2, announcement, .. }] if announcement.seq == 1)
        );
        assert_eq!(
            o.finished(posted("chat", 1, Some("refused")), t1, 0.0),
            None,
            "a failure streak warns once an hour"
        );
        let t2 = t0 + WARN_EVERY;
        o.due(t2, never_gone);
        assert!(
            o.finished(posted("chat", 1, Some("refused")), t2, 0.0)
                .is_some()
        );
        // Still 1 first: nothing overtakes a failing announcement.
        let t3 = t2 + MAX_BACKOFF;
        assert_eq!(posts(&o.due(t3, never_gone)), [("chat".into(), 1)]);
        o.finished(posted("chat", 1, None), t3, 0.0);
        assert_eq!(posts(&o.due(t3, never_gone)), [("chat".into(), 2)]);
    }

    #[test]
    fn backoff_doubles_from_a_second_to_five_minutes_spread_by_a_quarter() {
        let at = |n, j| backoff(n, j).as_secs_f64();
        assert_eq!(at(1, 0.5), 1.0);
        assert_eq!(at(2, 0.5), 2.0);
        assert_eq!(at(4, 0.5), 8.0);
        assert_eq!(at(9, 0.5), 256.0);
        assert_eq!(at(10, 0.5), 300.0);
        assert_eq!(at(1000, 0.99), 300.0);
        assert_eq!(at(3, 0.0), 3.0);
        assert!((at(3, 0.999) - 4.998).abs() < 0.01);
        let spread: std::collections::BTreeSet<u64> = (0..50)
            .map(|_| backoff(3, jitter()).as_millis() as u64)
            .collect();
        assert!(spread.len() > 10, "{spread:?}");
        assert!(
            spread.iter().all(|ms| (3000..5000).contains(ms)),
            "{spread:?}"
        );
    }

    #[test]
    fn marks_go_out_one_patch_at_a_time_and_a_lost_patch_is_redone() {
        let t0 = Instant::now();
        let mut o = Outbox::default();
        o.offer(
            offer(&[("audit", 5)], &[("chat", &[1, 2]), ("audit", &[6])]),
            t0,
        );
        o.due(t0, never_gone);
        o.finished(posted("chat", 1, None), t0, 0.5);
        let t1 = t0 + MARK_DELAY;
        let w = o.due(t1, never_gone);
        let first = marks_written(&w).expect("a mark");
        assert_eq!(
            first,
            BTreeMap::from([("audit".into(), 5), ("chat".into(), 1)])
        );
        // While that patch is out, more is delivered: no second patch yet.
        o.finished(posted("chat", 2, None), t1, 0.5);
        o.finished(posted("audit", 6, None), t1, 0.5);
        assert_eq!(marks_written(&o.due(t1 + MARK_DELAY, never_gone)), None);
        let failed = Done::Marked {
            release: key(),
            marks: first,
            result: MarkResult::Failed,
        };
        assert_eq!(o.finished(failed, t1, 0.5), None);
        assert_eq!(marks_written(&o.due(t1, never_gone)), None, "after a delay");
        let w = o.due(t1 + Duration::from_secs(1), never_gone);
        assert_eq!(
            marks_written(&w),
            Some(BTreeMap::from([("audit".into(), 6), ("chat".into(), 2)]))
        );
    }

    #[test]
    fn a_release_that_is_gone_is_dropped_once_failing_or_quiet_never_before_its_first_attempt() {
        let t0 = Instant::now();
        let gone = |_: &ReleaseKey, _: &str| true;
        let mut o = Outbox::default();
        o.offer(offer(&[], &[("chat", &[1])]), t0);
        assert_eq!(posts(&o.due(t0, gone)), [("chat".into(), 1)]);
        o.finished(posted("chat", 1, Some("refused")), t0, 0.5);
        assert!(o.due(t0 + MAX_BACKOFF, gone).is_empty());
        assert_eq!(o.next_wake(), None);
        // Another Release of the same name starts afresh.
        o.offer(offer(&[], &[("chat", &[1])]), t0);
        let mut other = offer(&[], &[("chat", &[1])]);
        other.uid = "u2".into();
        o.offer(other, t0);
        assert!(matches!(&o.due(t0, never_gone)[..], [Work::Post { uid, .. }] if uid == "u2"));
    }
}
