//! Other writers of a Release: what they may change under a decision
//! without it being decided again.

use super::*;

fn in_flight() -> Release {
    let mut sim = Sim::new(spec(&[("a", &[])]));
    sim.run_until(100, |s| {
        s.service_phase("a") == Some(ServicePhase::Progressing)
    });
    let mut r = sim.release.clone();
    r.metadata.uid = Some("u-1".into());
    r.metadata.generation = Some(1);
    r.metadata.resource_version = Some("10".into());
    r.metadata.finalizers = Some(vec![crate::api::FINALIZER.into()]);
    r
}

#[test]
fn another_writers_labels_and_annotations_leave_a_decision_standing() {
    let decided = in_flight();
    let mut now = decided.clone();
    now.metadata.resource_version = Some("11".into());
    now.metadata.labels = Some([("team.example/cost-centre".into(), "42".into())].into());
    now.metadata.annotations = Some([("argocd.argoproj.io/tracking-id".into(), "x".into())].into());
    assert!(decided_alike(&decided, &now));
}

/// One change to a Release, for a table of them.
type Edit = Box<dyn Fn(&mut Release)>;

#[test]
fn anything_the_engine_reads_changed_means_deciding_again() {
    let decided = in_flight();
    let changes: Vec<(&str, Edit)> = vec![
        ("spec", Box::new(|r| r.spec.paused = Some(true))),
        (
            "status",
            Box::new(|r| r.status.as_mut().unwrap().holds += 1),
        ),
        ("generation", Box::new(|r| r.metadata.generation = Some(2))),
        (
            "deletion",
            Box::new(|r| {
                r.metadata.deletion_timestamp =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(epoch()))
            }),
        ),
        ("finalizers", Box::new(|r| r.metadata.finalizers = None)),
        ("uid", Box::new(|r| r.metadata.uid = Some("u-2".into()))),
        (
            "our annotation",
            Box::new(|r| {
                r.metadata.annotations =
                    Some([(crate::api::ROLLBACK_BY_ANNOTATION.into(), "alice".into())].into())
            }),
        ),
        (
            "our label",
            Box::new(|r| {
                r.metadata.labels =
                    Some([(crate::api::POLICY_LABEL.into(), "strict".into())].into())
            }),
        ),
    ];
    for (what, change) in changes {
        let mut now = decided.clone();
        change(&mut now);
        assert!(!decided_alike(&decided, &now), "{what} changed");
    }
}
