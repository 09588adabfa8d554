//! A release's risk: the highest class of its changes, raised (never
//! lowered) by `spec.risk`, and the sentence that says why.

use crate::api::{ChangeClass, MemberKind, Problem, ReleaseSpec, Risk, ServiceSpec};

/// The risk one change carries; no class counts as a feature.
pub fn of_class(class: Option<ChangeClass>) -> Risk {
    match class {
        Some(ChangeClass::Copy | ChangeClass::Config) => Risk::Low,
        None | Some(ChangeClass::Feature) => Risk::Medium,
        Some(ChangeClass::Migration | ChangeClass::Auth | ChangeClass::Payment) => Risk::High,
    }
}

pub fn name(risk: Risk) -> &'static str {
    match risk {
        Risk::Auto => "auto",
        Risk::Low => "low",
        Risk::Medium => "medium",
        Risk::High => "high",
    }
}

fn class_name(class: ChangeClass) -> &'static str {
    match class {
        ChangeClass::Copy => "copy",
        ChangeClass::Config => "config",
        ChangeClass::Feature => "feature",
        ChangeClass::Migration => "migration",
        ChangeClass::Auth => "auth",
        ChangeClass::Payment => "payment",
    }
}

/// The risk one service carries: its change's class for a Deployment; a
/// migration job or a flag counts as medium, an irreversible migration as high.
fn of_service(svc: &ServiceSpec) -> Risk {
    match svc.kind() {
        MemberKind::Deployment { change, .. } => of_class(change.class),
        MemberKind::Job(job) if job.irreversible.is_some() => Risk::High,
        MemberKind::Job(_) | MemberKind::Flag(_) => Risk::Medium,
    }
}

/// The highest risk of `spec`'s changes, the first service that carries it,
/// and why, without `spec.risk`.
fn computed(spec: &ReleaseSpec) -> (Risk, String) {
    let top = spec
        .services
        .iter()
        .map(of_service)
        .max()
        .unwrap_or(Risk::Low);
    if top == Risk::Low {
        return (Risk::Low, "low: every change is copy or config".to_owned());
    }
    let Some(svc) = spec.services.iter().find(|s| of_service(s) == top) else {
        return (top, name(top).to_owned());
    };
    (top, format!("{}: {}", name(top), why(svc)))
}

fn why(svc: &ServiceSpec) -> String {
    match svc.kind() {
        MemberKind::Job(job) => match &job.irreversible {
            Some(i) => format!(
                "{} is an irreversible migration ({})",
                svc.name,
                i.justification.trim()
            ),
            None => format!("{} is a migration job (counts as medium)", svc.name),
        },
        MemberKind::Flag(_) => format!("{} is a flag change (counts as medium)", svc.name),
        MemberKind::Deployment { change, .. } => match change.class {
            None => format!("{} has no change.class (counts as feature)", svc.name),
            Some(c @ ChangeClass::Auth) => format!("{} is an {} change", svc.name, class_name(c)),
            Some(c) => format!("{} is a {} change", svc.name, class_name(c)),
        },
    }
}

/// The release's risk class (never `Auto`) and why, e.g.
/// `(High, "high: payments-api is a payment change")`. An explicit
/// `spec.risk` above the computed one wins and says so; one below it is
/// refused by [`problem`] and does not lower it here.
pub fn risk(spec: &ReleaseSpec) -> (Risk, String) {
    let (auto, reason) = computed(spec);
    match spec.risk {
        Some(set) if set > auto => (
            set,
            format!(
                "{}: set by spec.risk (its changes alone: {})",
                name(set),
                name(auto)
            ),
        ),
        _ => (auto, reason),
    }
}

/// `an auth`, `a payment`: as the CRD's rule writes a class.
fn with_article(class: &str) -> String {
    let article = if class.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {class}")
}

/// `spec.risk` below what the changes carry, in the words of the CRD's rule.
pub fn problem(spec: &ReleaseSpec) -> Option<Problem> {
    let set = spec.risk.filter(|r| *r != Risk::Auto)?;
    let (auto, _) = computed(spec);
    if set >= auto {
        return None;
    }
    let message = match set {
        Risk::Low => {
            let svc = spec.services.iter().find(|s| of_service(s) > Risk::Low)?;
            let what = match (svc.kind(), svc.change.class) {
                (MemberKind::Job(_), _) => "a migration job, which counts as medium".to_owned(),
                (MemberKind::Flag(_), _) => "a flag change, which counts as medium".to_owned(),
                (_, Some(c)) => format!("{} change", with_article(class_name(c))),
                (_, None) => "no change.class, which counts as feature".to_owned(),
            };
            format!(
                "low is below the risk of service {} ({what}); raise spec.risk or set it to auto",
                svc.name
            )
        }
        _ => {
            let svc = spec.services.iter().find(|s| of_service(s) == Risk::High)?;
            let what = match svc.kind() {
                MemberKind::Job(_) => "an irreversible migration".to_owned(),
                _ => format!(
                    "{} change",
                    with_article(svc.change.class.map_or("", class_name))
                ),
            };
            format!(
                "medium is below the risk of service {} ({what} is high risk); raise spec.risk to \
                 high or set it to auto",
                svc.name,
            )
        }
    };
    Some(Problem {
        field: "spec.risk".into(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(classes: &[(&str, Option<ChangeClass>)]) -> ReleaseSpec {
        let mut s = crate::testing::spec()
            .services(
                &classes
                    .iter()
                    .map(|(n, _)| (*n, &[][..]))
                    .collect::<Vec<_>>(),
            )
            .metric_at_most("e", "up", 0.1)
            .build();
        for (svc, (_, class)) in s.services.iter_mut().zip(classes) {
            svc.change.class = *class;
        }
        s
    }

    #[test]
    fn the_highest_change_sets_the_risk_and_says_which() {
        use ChangeClass::*;
        let cases: Vec<(ReleaseSpec, Risk, &str)> = vec![
            (
                spec(&[("web", Some(Copy)), ("payments-api", Some(Payment))]),
                Risk::High,
                "high: payments-api is a payment change",
            ),
            (
                spec(&[("login", Some(Auth))]),
                Risk::High,
                "high: login is an auth change",
            ),
            (
                spec(&[("web", Some(Copy)), ("cfg", Some(Config))]),
                Risk::Low,
                "low: every change is copy or config",
            ),
            (
                spec(&[("api", Some(Config)), ("web", None)]),
                Risk::Medium,
                "medium: web has no change.class (counts as feature)",
            ),
            (
                spec(&[("web", Some(Feature))]),
                Risk::Medium,
                "medium: web is a feature change",
            ),
        ];
        for (s, r, reason) in cases {
            assert_eq!(risk(&s), (r, reason.to_owned()));
            assert_eq!(problem(&s), None);
        }
    }

    #[test]
    fn spec_risk_raises_and_is_refused_below_with_the_service_named() {
        let mut s = spec(&[("web", Some(ChangeClass::Feature))]);
        s.risk = Some(Risk::High);
        assert_eq!(
            risk(&s),
            (
                Risk::High,
                "high: set by spec.risk (its changes alone: medium)".to_owned()
            )
        );
        s.risk = Some(Risk::Medium);
        assert_eq!(risk(&s).1, "medium: web is a feature change");
        s.risk = Some(Risk::Low);
        let p = problem(&s).expect("low is below feature");
        assert_eq!(
            p.to_string(),
            "spec.risk: low is below the risk of service web (a feature change); raise spec.risk or \
             set it to auto"
        );
        // Never lowered, even when the refusal is not heeded.
        assert_eq!(risk(&s).0, Risk::Medium);
        let mut s = spec(&[
            ("cfg", Some(ChangeClass::Config)),
            ("pay", Some(ChangeClass::Payment)),
        ]);
        s.risk = Some(Risk::Medium);
        assert_eq!(
            problem(&s).unwrap().message,
            "medium is below the risk of service pay (a payment change is high risk); raise spec.risk \
             to high or set it to auto"
        );
        let mut s = spec(&[("web", None)]);
        s.risk = Some(Risk::Low);
        assert!(
            problem(&s)
                .unwrap()
                .message
                .contains("(no change.class, which counts as feature)")
        );
        // "an auth change", as the CRD's rule says it too (e2e/tests/hostile_input.rs).
        let mut s = spec(&[("login", Some(ChangeClass::Auth))]);
        s.risk = Some(Risk::Medium);
        assert_eq!(
            problem(&s).unwrap().message,
            "medium is below the risk of service login (an auth change is high risk); raise \
             spec.risk to high or set it to auto"
        );
        s.risk = Some(Risk::Low);
        assert!(problem(&s).unwrap().message.contains("(an auth change)"));
    }

    #[test]
    fn a_job_or_a_flag_counts_as_medium_and_an_irreversible_migration_as_high() {
        let mut s = crate::testing::spec()
            .service("copy", [] as [&str; 0])
            .job("db", [] as [&str; 0])
            .service("api", ["db"])
            .metric_at_most("e", "up", 0.1)
            .build();
        s.services[0].change.class = Some(ChangeClass::Copy);
        s.services[2].change.class = Some(ChangeClass::Config);
        assert_eq!(
            risk(&s),
            (
                Risk::Medium,
                "medium: db is a migration job (counts as medium)".to_owned()
            )
        );
        s.risk = Some(Risk::Low);
        assert_eq!(
            problem(&s).unwrap().message,
            "low is below the risk of service db (a migration job, which counts as medium); raise \
             spec.risk or set it to auto"
        );
        let job = s.services[1].job.as_mut().unwrap();
        job.rollback = None;
        job.irreversible = Some(crate::api::Irreversible {
            justification: "drops a table".into(),
        });
        s.risk = None;
        assert_eq!(
            risk(&s),
            (
                Risk::High,
                "high: db is an irreversible migration (drops a table)".to_owned()
            )
        );
        s.risk = Some(Risk::Medium);
        assert_eq!(
            problem(&s).unwrap().message,
            "medium is below the risk of service db (an irreversible migration is high risk); raise \
             spec.risk to high or set it to auto"
        );
        let f = crate::testing::spec()
            .flag("on", [] as [&str; 0], "flags", &[("k", "on")])
            .metric_at_most("e", "up", 0.1)
            .build();
        assert_eq!(risk(&f).1, "medium: on is a flag change (counts as medium)");
    }
}
