//! Golden tests of `kubectl signalman report`: for each finished Release in
//! `src/plugin/testdata/report/` (a succeeded, a rolled-back and a failed
//! train), each audience's text in markdown and JSON, next to the input as
//! `<input>.<audience>.md` and `.json`.
//! Regenerate after an intended change: `UPDATE_GOLDEN=1 cargo test --test plugin_report`.
//!
//! The inputs are Releases captured from real e2e runs (`SIGNALMAN_CAPTURE_DIR`,
//! see `e2e/src/release.rs::capture`): `succeeded` and `rolled-back` by
//! `train_verify`, `failed` by `train_migration`.

use std::path::{Path, PathBuf};

use signalman::api::{Phase, Release};
use signalman::plugin::report::{self, Audience, Document, Format};

const INPUTS: [&str; 3] = ["succeeded", "rolled-back", "failed"];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/plugin/testdata/report")
}

fn release(name: &str) -> Release {
    let path = dir().join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn golden(file: &str, actual: &str) {
    let path = dir().join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; create it with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

#[test]
fn each_audience_reads_each_finished_release_as_the_golden_files_say() {
    for input in INPUTS {
        let r = release(input);
        for audience in Audience::ALL {
            let md = report::render(&r, audience, Format::Markdown).unwrap();
            golden(&format!("{input}.{}.md", audience.name()), &md);
            let json = report::render(&r, audience, Format::Json).unwrap();
            golden(&format!("{input}.{}.json", audience.name()), &json);
        }
    }
}

#[test]
fn the_inputs_are_the_three_outcomes() {
    let outcomes: Vec<Phase> = INPUTS
        .iter()
        .map(|i| {
            let r = release(i);
            let st = r.status.expect("a status");
            assert_eq!(
                st.report.as_ref().map(|rep| rep.outcome),
                st.phase,
                "{i}: the report's outcome is the phase"
            );
            st.phase.unwrap()
        })
        .collect();
    assert_eq!(
        outcomes,
        [Phase::Succeeded, Phase::RolledBack, Phase::Failed]
    );
}

#[test]
fn leadership_gets_exactly_three_lines() {
    for input in INPUTS {
        let md = report::render(&release(input), Audience::Leadership, Format::Markdown).unwrap();
        assert_eq!(md.lines().count(), 3, "{input}:\n{md}");
        let starts: Vec<&str> = md
            .lines()
            .map(|l| l.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(
            starts,
            ["**Outcome", "**Risk and duration", "**Incidents"],
            "{input}"
        );
    }
}

#[test]
fn markdown_and_json_say_the_same() {
    for input in INPUTS {
        let r = release(input);
        for audience in Audience::ALL {
            let json = report::render(&r, audience, Format::Json).unwrap();
            let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
            let md = report::render(&r, audience, Format::Markdown).unwrap();
            for section in doc["sections"].as_array().unwrap() {
                for line in section["lines"].as_array().unwrap() {
                    let line = line.as_str().unwrap();
                    assert!(
                        md.contains(line),
                        "{input}/{audience:?}: {line:?} not in\n{md}"
                    );
                }
            }
            assert_eq!(doc["audience"], audience.name());
            assert_eq!(doc["release"], r.metadata.name.clone().unwrap());
        }
    }
}

#[test]
fn the_text_comes_from_the_report_alone() {
    // Emptying a fact removes it from every audience's text: nothing is filled in from elsewhere.
    for input in INPUTS {
        let r = release(input);
        let rep = r.status.as_ref().unwrap().report.clone().unwrap();
        for audience in Audience::ALL {
            let text = text(&r, audience);
            assert!(
                text.contains(&rep.summary),
                "{input}/{audience:?}: no summary"
            );
        }
        let mut bare = r.clone();
        {
            let rep = bare.status.as_mut().unwrap().report.as_mut().unwrap();
            rep.services.clear();
            rep.approvals.clear();
            rep.holds.clear();
            rep.deferred.clear();
            rep.rollback = None;
            rep.verification = None;
            rep.risk = None;
            rep.risk_reason = None;
        }
        for audience in Audience::ALL {
            let text = text(&bare, audience);
            for s in &rep.services {
                assert!(
                    !text.contains(&format!("{}:", s.name))
                        && !text.contains(&format!("{} (", s.name)),
                    "{input}/{audience:?}: {} is named though the report lists no service:\n{text}",
                    s.name
                );
                for image in s.to.values() {
                    assert!(
                        !text.contains(image.as_str()),
                        "{input}/{audience:?}: {image}"
                    );
                }
            }
            if let Some(rb) = &rep.rollback
                && !rep.summary.contains(&rb.message)
            {
                assert!(!text.contains(&rb.message), "{input}/{audience:?}");
            }
        }
    }
}

fn text(r: &Release, audience: Audience) -> String {
    let doc: Document = report::document(r, audience).unwrap();
    doc.sections
        .iter()
        .flat_map(|s| s.lines.iter().cloned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_release_that_has_not_ended_has_no_report_yet() {
    let mut r = release("succeeded");
    let st = r.status.as_mut().unwrap();
    st.report = None;
    st.phase = Some(Phase::Verifying);
    let e = report::render(&r, Audience::Support, Format::Markdown).unwrap_err();
    assert!(
        e.contains("has no report yet: it is written when the release ends (Succeeded, RolledBack or Failed), and it is Verifying"),
        "{e}"
    );
}

#[test]
fn an_unknown_audience_is_refused_with_the_four_names() {
    let e = Audience::parse("board").unwrap_err();
    for a in ["engineering", "product", "support", "leadership"] {
        assert!(e.contains(a), "{e}");
    }
    assert!(e.starts_with("--audience board"), "{e}");
}
