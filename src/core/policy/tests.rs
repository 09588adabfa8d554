use std::time::Duration;

use super::*;
use crate::api::{Analysis, Approvals, ChangeClass, ReleaseStatus, RiskProfiles, Step, Window};

fn steps(weights: &[i32]) -> Vec<Step> {
    weights
        .iter()
        .map(|w| Step {
            weight: *w,
            bake: Duration::from_secs(60).into(),
            approval: None,
        })
        .collect()
}

fn policy() -> PolicyObservation {
    let profile = |w: &[i32], last: bool, interval: u64| Profile {
        steps: Some(steps(w)),
        analysis: Some(AnalysisLimits {
            interval: Some(Duration::from_secs(interval).into()),
            failure_limit: Some(1),
            ..Default::default()
        }),
        approvals: Some(Approvals {
            before_last_step: Some(last),
            four_eyes: Some(last),
            ..Default::default()
        }),
    };
    PolicyObservation::Found {
        name: "strict".into(),
        spec: ReleasePolicySpec {
            risks: Some(RiskProfiles {
                low: Some(profile(&[50, 100], false, 10)),
                medium: Some(profile(&[20, 50, 100], false, 20)),
                high: Some(profile(&[5, 10, 25, 50, 100], true, 30)),
            }),
            hotfix: Some(profile(&[50, 100], false, 5)),
            gate_timeout: Some(Duration::from_secs(3600).into()),
            ..Default::default()
        },
    }
}

fn spec(class: ChangeClass) -> ReleaseSpec {
    let mut s = crate::testing::spec()
        .services(&[("payments-api", &[]), ("web", &[])])
        .metric_at_most("error-rate", "up", 0.01)
        .build();
    for svc in &mut s.services {
        svc.change.class = Some(class);
    }
    s
}

#[test]
fn the_risk_or_the_type_picks_the_profile_and_the_release_s_timeout_wins() {
    let a = applied(&spec(ChangeClass::Payment), &policy());
    assert_eq!(a.name.as_deref(), Some("strict"));
    assert_eq!(a.profile.as_deref(), Some("high"));
    assert_eq!(a.defaults.unwrap().steps.unwrap().len(), 5);
    assert_eq!(a.gate_timeout, Some(Duration::from_secs(3600).into()));
    let mut s = spec(ChangeClass::Copy);
    assert_eq!(applied(&s, &policy()).profile.as_deref(), Some("low"));
    s.release_type = Some(ReleaseType::Hotfix);
    s.gate_timeout = Some(Duration::from_secs(60).into());
    let a = applied(&s, &policy());
    assert_eq!(a.profile.as_deref(), Some("hotfix"));
    assert_eq!(a.gate_timeout, Some(Duration::from_secs(60).into()));
    // No policy: nothing but the Release's own timeout.
    assert_eq!(
        applied(&s, &PolicyObservation::None),
        AppliedPolicy {
            gate_timeout: Some(Duration::from_secs(60).into()),
            ..Default::default()
        }
    );
}

#[test]
fn the_service_then_the_defaults_then_the_profile_then_the_built_in_steps() {
    let mut s = spec(ChangeClass::Payment);
    s.services[1].steps = Some(steps(&[30, 100]));
    let a = applied(&s, &policy());
    let f = fill(&s, &a);
    let weights = |svc: usize| -> Vec<(i32, bool)> {
        f.steps_of(&f.services[svc])
            .iter()
            .map(|st| (st.weight, st.approval == Some(true)))
            .collect()
    };
    // High: the profile's five steps, and an approval before the last.
    assert_eq!(
        weights(0),
        [
            (5, false),
            (10, false),
            (25, false),
            (50, true),
            (100, false)
        ]
    );
    assert_eq!(weights(1), [(30, true), (100, false)]);
    s.defaults.as_mut().unwrap().steps = Some(steps(&[40, 100]));
    let f = fill(&s, &a);
    assert_eq!(f.steps_of(&f.services[0]).len(), 2);
    // Limits: the Release's own first, then the profile's; metrics stay the Release's.
    let svc_analysis = f.analysis_of(&f.services[0]);
    assert_eq!(svc_analysis.interval(), Duration::from_secs(30));
    assert_eq!(svc_analysis.failure_limit(), 1);
    assert_eq!(svc_analysis.metrics.len(), 1);
    s.services[0].analysis = Some(Analysis {
        interval: Some(Duration::from_secs(7).into()),
        ..f.analysis_of(&f.services[0])
    });
    let f = fill(&s, &a);
    assert_eq!(
        f.analysis_of(&f.services[0]).interval(),
        Duration::from_secs(7)
    );
    // Verification is judged with the profile's limits too, its own first.
    s.verify = crate::testing::spec()
        .verify(
            Duration::from_secs(600),
            Duration::from_secs(20),
            "checkout-failures",
            "up",
            0.5,
        )
        .build()
        .verify;
    let f = fill(&s, &a);
    let verify = &f.verify.as_ref().unwrap().analysis;
    assert_eq!(verify.failure_limit(), 1);
    assert_eq!(verify.interval(), Duration::from_secs(20));
    // Without a profile: the spec as written.
    assert_eq!(fill(&s, &AppliedPolicy::default()), s);
}

#[test]
fn effective_reads_the_policy_fixed_in_status() {
    let s = spec(ChangeClass::Copy);
    let mut r = Release::new("train", s.clone());
    assert!(matches!(effective(&r), Cow::Borrowed(_)));
    r.status = Some(ReleaseStatus {
        policy: Some(applied(&s, &policy())),
        ..Default::default()
    });
    let e = effective(&r);
    assert_eq!(e.steps_of(&e.services[0]).len(), 2);
    assert_eq!(
        e.analysis_of(&e.services[0]).interval(),
        Duration::from_secs(10)
    );
}

#[test]
fn an_unusable_policy_names_itself_and_the_field() {
    let spec = ReleasePolicySpec {
        window: Some(Window {
            days: vec![crate::api::Weekday::Monday],
            from: "09:00".into(),
            to: "17:00".into(),
            time_zone: Some("Europe/Bern1n".into()),
        }),
        hotfix: Some(Profile {
            steps: Some(steps(&[50])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let said: Vec<String> = validate_policy("default", &spec)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        said,
        [
            "ReleasePolicy default: spec.window.timeZone: unknown time zone \"Europe/Bern1n\"; use an IANA \
             time zone such as Europe/Berlin or UTC",
            "ReleasePolicy default: spec.hotfix.steps: needs at least two steps (a single jump to 100 is not a \
             canary), e.g. 10 then 100",
            "ReleasePolicy default: spec.hotfix.steps[0].weight: the last step must have weight 100",
        ]
    );
    assert!(validate_policy("default", &ReleasePolicySpec::default()).is_empty());
}

#[test]
fn the_approval_gates_are_the_releases_own_then_the_one_before_the_start() {
    use crate::api::{Approvals, Gate};
    let mut spec = crate::testing::spec()
        .service("a", Vec::<String>::new())
        .build();
    let gate = |name: &str, approval: Option<bool>| Gate {
        name: name.into(),
        query: approval.is_none().then(|| "up".to_owned()),
        min: Some(1.0),
        max: None,
        interval: None,
        approval,
    };
    spec.gates = vec![gate("smoke", None), gate("change-board", Some(true))];
    assert_eq!(super::approval_gates(&spec, None), ["change-board"]);
    let before = Approvals {
        before_start: Some(true),
        ..Default::default()
    };
    assert_eq!(
        super::approval_gates(&spec, Some(&before)),
        ["change-board", "approval"]
    );
    // A hotfix's review is its one approval before the start, whatever the profile.
    spec.release_type = Some(crate::api::ReleaseType::Hotfix);
    assert_eq!(
        super::approval_gates(&spec, Some(&before)),
        ["change-board", "review"]
    );
    assert_eq!(super::start_gate(&spec, None), Some("review"));
    // A service's own approval gate can be approved too, but is not checked before the start.
    spec.services[0].gates = vec![gate("payments-sign-off", Some(true)), gate("load", None)];
    assert_eq!(
        super::approval_gates(&spec, Some(&before)),
        ["change-board", "review"]
    );
    assert_eq!(
        super::approvable_gates(&spec, Some(&before)),
        ["change-board", "review", "payments-sign-off"]
    );
}

#[test]
fn the_policy_is_the_releases_else_the_namespaces_else_default_named_by_nothing() {
    let mut spec = crate::testing::spec()
        .service("a", Vec::<String>::new())
        .build();
    assert_eq!(super::named(&spec, None), ("default".to_owned(), None));
    assert_eq!(super::named(&spec, Some("")), ("default".to_owned(), None));
    assert_eq!(
        super::named(&spec, Some("strict")),
        (
            "strict".to_owned(),
            Some("namespace label signalman.dev/policy".to_owned())
        )
    );
    spec.policy = Some("own".into());
    assert_eq!(
        super::named(&spec, Some("strict")),
        ("own".to_owned(), Some("spec.policy".to_owned()))
    );
}
