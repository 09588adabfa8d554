//! Who changed what in a stable Deployment: the words of a drift hold and of a
//! refused manual rollback. The shell observes each image and env var of the
//! pod template that is not both the baseline's and the new version's, with
//! the field manager that last wrote it (`metadata.managedFields`); which
//! value the release expected depends on where the service is, and is the
//! engine's to say.

use jiff::Timestamp;

use super::{StableObservation, TemplateField, TemplateState};
use crate::api::FIELD_MANAGER;

/// The version of the pod template the release expects the stable Deployment
/// to run now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Before promotion: the stable Deployment stays as it was.
    Baseline,
    /// From promotion on: the new version.
    New,
}

impl TemplateField {
    fn expected(&self, expected: Expected) -> Option<&str> {
        match expected {
            Expected::Baseline => self.baseline.as_deref(),
            Expected::New => self.new.as_deref(),
        }
    }

    /// `container "app" image` or `container "app" env LEVEL`.
    fn what(&self) -> String {
        match &self.env {
            None => format!("container {:?} image", self.container),
            Some(var) => format!("container {:?} env {var}", self.container),
        }
    }

    fn by(&self) -> String {
        let Some(w) = &self.writer else {
            return String::new();
        };
        let at = w.time.map(|t| format!(", {t}")).unwrap_or_default();
        format!(" by {} ({}{at})", w.manager, w.operation)
    }

    /// In words, from the value expected to the one live.
    fn describe(&self, expected: Expected) -> String {
        let quoted = |v: Option<&str>| v.map_or_else(|| "unset".to_owned(), |v| format!("{v:?}"));
        let by = self.by();
        if self.env.is_none() && self.live.is_none() {
            return format!("container {:?} is gone", self.container);
        }
        if self.env.is_none() && self.baseline.is_none() && self.new.is_none() {
            return format!("container {:?} was added{by}", self.container);
        }
        format!(
            "{} changed from {} to {}{by}",
            self.what(),
            quoted(self.expected(expected)),
            quoted(self.live.as_deref())
        )
    }
}

/// What differs between the stable Deployment and the version the release
/// expects, naming each field, both values and who wrote it (`container
/// "app" image changed from "a:v2" to "a:v1" by argocd-controller (Apply,
/// 2026-12-03T01:02:03Z)`); `None` when the template is what is expected.
pub fn what_changed(stable: &StableObservation, expected: Expected) -> Option<String> {
    let want = match expected {
        Expected::Baseline => TemplateState::Baseline,
        Expected::New => TemplateState::New,
    };
    if stable.template == want {
        return None;
    }
    let found: Vec<String> = stable
        .fields
        .iter()
        .filter(|f| f.live.as_deref() != f.expected(expected))
        .map(|f| f.describe(expected))
        .collect();
    Some(if found.is_empty() {
        "its pod template changed outside images and env".to_owned()
    } else {
        found.join("; ")
    })
}

/// The stable Deployment of a service being promoted shows the baseline
/// again, and someone other than Signalman wrote a field of it at or after
/// `promoting_since` (when the promotion began): the new version was written
/// and put back by someone else (a GitOps tool re-applying the old image).
/// Writing it again would fight them. A baseline whose fields were last
/// written before the promotion is only the store not showing Signalman's
/// write yet.
pub fn reverted_since(stable: &StableObservation, promoting_since: Timestamp) -> bool {
    if stable.template != TemplateState::Baseline {
        return false;
    }
    // managedFields times have whole seconds.
    let since = Timestamp::from_second(promoting_since.as_second()).unwrap_or(promoting_since);
    stable
        .fields
        .iter()
        .filter(|f| f.live != f.new)
        .filter_map(|f| f.writer.as_ref())
        .any(|w| w.manager != FIELD_MANAGER && w.time.is_some_and(|t| t >= since))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::FieldWriter;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn image(live: Option<&str>, writer: Option<(&str, &str)>) -> TemplateField {
        TemplateField {
            container: "app".into(),
            env: None,
            live: live.map(Into::into),
            baseline: Some("shop/a:v1".into()),
            new: Some("shop/a:v2".into()),
            writer: writer.map(|(manager, time)| FieldWriter {
                manager: manager.into(),
                operation: "Apply".into(),
                time: Some(at(time)),
            }),
        }
    }

    fn stable(template: TemplateState, fields: Vec<TemplateField>) -> StableObservation {
        StableObservation {
            containers: vec!["app".into()],
            template,
            rolled_out: true,
            replicas: 2,
            paused: false,
            rollout_failed: false,
            images: Default::default(),
            fields,
        }
    }

    #[test]
    fn a_gitops_tool_putting_the_old_image_back_is_named_with_both_values() {
        let reverted = stable(
            TemplateState::Baseline,
            vec![image(
                Some("shop/a:v1"),
                Some(("argocd-controller", "2026-12-03T01:02:03Z")),
            )],
        );
        assert_eq!(
            what_changed(&reverted, Expected::New).as_deref(),
            Some(
                r#"container "app" image changed from "shop/a:v2" to "shop/a:v1" by argocd-controller (Apply, 2026-12-03T01:02:03Z)"#
            )
        );
        // Expected the baseline, it is the baseline: nothing to say.
        assert_eq!(what_changed(&reverted, Expected::Baseline), None);
    }

    #[test]
    fn a_hotfix_mid_bake_is_told_against_the_baseline_env_and_containers_too() {
        let mut fields = vec![image(
            Some("shop/a:hotfix"),
            Some(("kubectl-edit", "2026-12-03T01:00:00Z")),
        )];
        fields[0].writer.as_mut().unwrap().operation = "Update".into();
        fields.push(TemplateField {
            env: Some("LEVEL".into()),
            live: Some("debug".into()),
            baseline: None,
            new: None,
            writer: None,
            ..image(None, None)
        });
        fields.push(TemplateField {
            container: "sidecar".into(),
            live: Some("proxy:2".into()),
            baseline: None,
            new: None,
            writer: Some(FieldWriter {
                manager: "istio".into(),
                operation: "Update".into(),
                time: None,
            }),
            ..image(None, None)
        });
        fields.push(TemplateField {
            container: "logs".into(),
            live: None,
            baseline: Some("log:1".into()),
            new: Some("log:1".into()),
            ..image(None, None)
        });
        let drifted = stable(TemplateState::Drifted, fields);
        assert_eq!(
            what_changed(&drifted, Expected::Baseline).as_deref(),
            Some(concat!(
                r#"container "app" image changed from "shop/a:v1" to "shop/a:hotfix" by kubectl-edit (Update, 2026-12-03T01:00:00Z); "#,
                r#"container "app" env LEVEL changed from unset to "debug"; "#,
                r#"container "sidecar" was added by istio (Update); "#,
                r#"container "logs" is gone"#
            ))
        );
        // A difference outside images and env is still a difference.
        assert_eq!(
            what_changed(&stable(TemplateState::Drifted, vec![]), Expected::New).as_deref(),
            Some("its pod template changed outside images and env")
        );
        assert_eq!(
            what_changed(&stable(TemplateState::New, vec![]), Expected::New),
            None
        );
    }

    #[test]
    fn a_baseline_seen_mid_promotion_is_a_revert_only_when_someone_else_wrote_it_since() {
        let since = at("2026-12-03T01:02:03.750Z");
        let by = |manager, time| {
            stable(
                TemplateState::Baseline,
                vec![image(Some("shop/a:v1"), Some((manager, time)))],
            )
        };
        // Written in the second the promotion began, or later, by another manager.
        assert!(reverted_since(
            &by("argocd-controller", "2026-12-03T01:02:03Z"),
            since
        ));
        assert!(reverted_since(
            &by("kustomize-controller", "2026-12-03T01:05:00Z"),
            since
        ));
        // The user's apply from before the promotion: the store is behind our write.
        assert!(!reverted_since(
            &by("argocd-controller", "2026-12-03T01:02:02Z"),
            since
        ));
        // Our own entry, an unknown writer, or a template that is not the baseline.
        assert!(!reverted_since(
            &by(FIELD_MANAGER, "2026-12-03T01:05:00Z"),
            since
        ));
        assert!(!reverted_since(
            &stable(
                TemplateState::Baseline,
                vec![image(Some("shop/a:v1"), None)]
            ),
            since
        ));
        let mut new = by("argocd-controller", "2026-12-03T01:05:00Z");
        new.template = TemplateState::New;
        assert!(!reverted_since(&new, since));
    }
}
