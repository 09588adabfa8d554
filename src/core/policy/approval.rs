//! Which sign-offs count. The API server vouches for who wrote each
//! ReleaseApproval; whether that person may approve this release under its
//! profile (the approvers list, four eyes) is decided here, once, for the
//! controller and the plugin alike.

use crate::api::{Approvals, CREATED_BY_ANNOTATION, Release};
use crate::engine::ApprovalObservation;

/// What an approval approves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// An approval gate (`spec.gates[].name`, `approval` or `review`).
    Gate(&'a str),
    /// Step `step` (counted from 1) of `service`.
    Step { service: &'a str, step: i32 },
    /// The window override.
    Window,
}

impl Target<'_> {
    /// The plugin command that approves it, for messages.
    pub fn command(&self, release: &str) -> String {
        let what = match self {
            Target::Gate(g) => format!("--gate {g}"),
            Target::Step { service, step } => format!("--step {service}/{step}"),
            Target::Window => "--window".to_owned(),
        };
        format!("kubectl signalman approve {release} {what} -m ...")
    }

    fn matches(&self, a: &crate::api::ReleaseApprovalSpec) -> bool {
        match self {
            Target::Gate(g) => a.gate.as_deref() == Some(*g),
            Target::Step { service, step } => a
                .step
                .as_ref()
                .is_some_and(|s| s.service == *service && s.step == *step),
            Target::Window => a.window == Some(true),
        }
    }
}

/// The approvals of one target: the first that counts, and why each other one does not.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict<'a> {
    pub approved_by: Option<&'a ApprovalObservation>,
    /// One sentence per approval that does not count.
    pub refused: Vec<String>,
}

impl Verdict<'_> {
    /// `approved by alice: "smoke tests green"`, or what is missing and the command.
    pub fn reason(&self, target: &Target, release: &str) -> String {
        match self.approved_by {
            Some(a) => format!("approved by {}: {:?}", a.spec.approver, a.spec.comment),
            None => {
                let mut out = format!("waits for an approval ({})", target.command(release));
                for r in &self.refused {
                    out.push_str("; ");
                    out.push_str(r);
                }
                out
            }
        }
    }
}

/// Who created `release`, as the API server vouched (annotation `signalman.dev/created-by`).
pub fn creator(release: &Release) -> Option<&str> {
    release
        .metadata
        .annotations
        .as_ref()?
        .get(CREATED_BY_ANNOTATION)
        .map(String::as_str)
        .filter(|c| !c.is_empty())
}

/// The approvals of `target` for `release` and which of them count under `rules`
/// (the profile's approvals; none: any approval the API server admitted counts).
pub fn verdict<'a>(
    release: &Release,
    rules: Option<&Approvals>,
    approvals: &'a [ApprovalObservation],
    target: &Target,
) -> Verdict<'a> {
    let name = release.metadata.name.as_deref().unwrap_or_default();
    let mut out = Verdict::default();
    let mut mine: Vec<&ApprovalObservation> = approvals
        .iter()
        .filter(|a| a.spec.release == name && target.matches(&a.spec))
        .collect();
    mine.sort_by(|a, b| (a.at, &a.name).cmp(&(b.at, &b.name)));
    for a in mine {
        match refusal(release, rules, a) {
            None => {
                out.approved_by.get_or_insert(a);
            }
            Some(why) => out.refused.push(why),
        }
    }
    out
}

fn refusal(
    release: &Release,
    rules: Option<&Approvals>,
    a: &ApprovalObservation,
) -> Option<String> {
    refusal_of(release, rules, &a.spec.approver)
}

/// Why an approval by `who` would not count for `release` under `rules`, if
/// it would not: the plugin asks before it creates one.
pub fn refusal_of(release: &Release, rules: Option<&Approvals>, who: &str) -> Option<String> {
    let rules = rules?;
    if !rules.approvers.is_empty() && !rules.approvers.iter().any(|a| a == who) {
        return Some(format!(
            "{who}'s approval does not count: only {} may approve under this release's policy",
            rules.approvers.join(", ")
        ));
    }
    if rules.four_eyes == Some(true) {
        match creator(release) {
            Some(c) if c == who => {
                return Some(format!(
                    "{who}'s approval does not count: {who} created the Release, and its policy wants \
                     four eyes (someone else must approve)"
                ));
            }
            Some(_) => {}
            None => {
                return Some(format!(
                    "{who}'s approval does not count: the Release's creator is unknown (no annotation \
                     {CREATED_BY_ANNOTATION}), so four eyes cannot be checked; recreate the Release \
                     with that annotation set to your user (the admission policy vouches for it)"
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ReleaseApprovalSpec, StepRef};
    use jiff::Timestamp;

    fn release(creator: Option<&str>) -> Release {
        let mut r = Release::new("train", crate::testing::spec().build());
        if let Some(c) = creator {
            r.metadata.annotations =
                Some([(CREATED_BY_ANNOTATION.to_owned(), c.to_owned())].into());
        }
        r
    }

    fn approval(by: &str, gate: Option<&str>, at: i64) -> ApprovalObservation {
        ApprovalObservation {
            name: format!("{by}-{at}"),
            spec: ReleaseApprovalSpec {
                release: "train".into(),
                approver: by.into(),
                gate: gate.map(Into::into),
                step: None,
                window: None,
                comment: "looked".into(),
            },
            at: Some(Timestamp::from_second(at).unwrap()),
        }
    }

    #[test]
    fn four_eyes_refuses_the_creator_and_an_unknown_creator() {
        let rules = Approvals {
            four_eyes: Some(true),
            ..Default::default()
        };
        let all = vec![
            approval("alice", Some("approval"), 1),
            approval("bob", Some("approval"), 2),
        ];
        let t = Target::Gate("approval");
        let v = verdict(&release(Some("alice")), Some(&rules), &all, &t);
        assert_eq!(v.approved_by.map(|a| a.spec.approver.as_str()), Some("bob"));
        assert_eq!(v.refused.len(), 1);
        assert!(v.refused[0].contains("alice created the Release"), "{v:?}");

        let only_alice = &all[..1];
        let v = verdict(&release(Some("alice")), Some(&rules), only_alice, &t);
        assert_eq!(v.approved_by, None);
        let reason = v.reason(&t, "train");
        assert!(
            reason.starts_with(
                "waits for an approval (kubectl signalman approve train --gate approval -m ...)"
            ),
            "{reason}"
        );
        let v = verdict(&release(None), Some(&rules), &all, &t);
        assert_eq!(v.approved_by, None);
        assert!(
            v.refused.iter().all(|r| r.contains("creator is unknown")),
            "{v:?}"
        );
        // Without four eyes the creator's own approval counts.
        let v = verdict(&release(Some("alice")), None, only_alice, &t);
        assert!(v.approved_by.is_some());
    }

    #[test]
    fn only_listed_approvers_count_and_only_for_what_they_approve() {
        let rules = Approvals {
            approvers: vec!["carol".into()],
            ..Default::default()
        };
        let mut step = approval("carol", None, 3);
        step.spec.step = Some(StepRef {
            service: "web".into(),
            step: 3,
        });
        let mut other = approval("carol", Some("smoke"), 4);
        other.spec.release = "another".into();
        let all = vec![approval("bob", Some("smoke"), 1), step, other];
        let r = release(None);
        let v = verdict(&r, Some(&rules), &all, &Target::Gate("smoke"));
        assert_eq!(v.approved_by, None);
        assert!(v.refused[0].contains("only carol may approve"), "{v:?}");
        let t = Target::Step {
            service: "web",
            step: 3,
        };
        assert!(verdict(&r, Some(&rules), &all, &t).approved_by.is_some());
        let t = Target::Step {
            service: "web",
            step: 2,
        };
        assert!(verdict(&r, Some(&rules), &all, &t).approved_by.is_none());
        assert!(
            verdict(&r, Some(&rules), &all, &Target::Window)
                .approved_by
                .is_none()
        );
    }
}
