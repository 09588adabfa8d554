//! `kubectl signalman get --watch`: follow releases as the controller moves
//! them, redrawn in place on a terminal, a block per change on a pipe, or one
//! object per change with `-o`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

use crate::api::Release;

use super::cluster::Connection;
use super::commands::{Failure, Output, encode, find};
use super::screen::{FALLBACK_SIZE, Screen, terminal_size};
use super::style::Style;
use super::untrusted;
use super::view;

/// Redraw in place on a terminal; elsewhere print a new block whenever the release changes.
pub async fn watch(
    conn: &Connection,
    ns: Option<String>,
    name: Option<String>,
    output: Option<Output>,
    style: Style,
) -> Result<ExitCode, Failure> {
    // Fetch once first: a missing Release or CRD is reported as such, not as a silent empty watch.
    let mut releases: BTreeMap<(String, String), Release> = BTreeMap::new();
    let ns = match &name {
        Some(n) => {
            let r = find(conn, ns.as_deref(), n).await?;
            let ns = r.namespace();
            releases.insert((r.namespace().unwrap_or_default(), r.name_any()), r);
            ns
        }
        None => {
            for r in conn.list(ns.as_deref()).await? {
                releases.insert((r.namespace().unwrap_or_default(), r.name_any()), r);
            }
            ns
        }
    };
    let api: Api<Release> = match &ns {
        Some(ns) => Api::namespaced(conn.client.clone(), ns),
        None => Api::all(conn.client.clone()),
    };
    let mut config = watcher::Config::default();
    if let Some(n) = &name {
        config = config.fields(&format!("metadata.name={n}"));
    }
    let mut events = watcher(api, config).default_backoff().boxed();
    let tty = std::io::stdout().is_terminal() && output.is_none();
    let zone = TimeZone::system();
    let mut screen = Screen::new(tty);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut trouble: Option<String> = None;
    let mut changed = true;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    // `timeout` and process supervisors stop a watch with SIGTERM; leave the terminal tidy then too.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Failure(format!("listening for SIGTERM: {e}")))?;
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(watcher::Event::Apply(r) | watcher::Event::InitApply(r))) => {
                    releases.insert((r.namespace().unwrap_or_default(), r.name_any()), r);
                    trouble = None;
                    changed = true;
                }
                Some(Ok(watcher::Event::Delete(r))) => {
                    releases.remove(&(r.namespace().unwrap_or_default(), r.name_any()));
                    changed = true;
                    if name.is_some() {
                        if let Some(bytes) = screen.finish() {
                            write_out(bytes);
                        }
                        return Err(Failure(format!("Release {} was deleted", r.name_any())));
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let msg = format!("watch interrupted ({}); retrying", untrusted::escape(&e.to_string()));
                    if !tty && trouble.as_deref() != Some(msg.as_str()) {
                        eprintln!("{msg}");
                    }
                    trouble = Some(msg);
                }
                None => break,
            },
            _ = tick.tick() => {
                // Countdowns move every second on a terminal; a pipe only gets real changes.
                if !tty { continue; }
            }
            _ = &mut ctrl_c => break,
            _ = term.recv() => break,
        }
        let now = Timestamp::now();
        if let Some(o) = output {
            if changed {
                for r in releases.values() {
                    match o {
                        Output::Json => println!(
                            "{}",
                            serde_json::to_string(r).map_err(|e| Failure(e.to_string()))?
                        ),
                        Output::Yaml => print!("---\n{}", encode(r, o)?),
                    }
                }
            }
        } else {
            let frame = frame(
                &releases,
                name.is_some(),
                ns.is_none(),
                trouble.as_deref(),
                now,
                &zone,
                style,
            );
            let clock = view::local_time(now, &zone);
            // Only a terminal has a size; asking on a pipe would make crossterm fall back to running `tput`.
            let size = if tty { terminal_size() } else { FALLBACK_SIZE };
            if let Some(bytes) = screen.update(&frame, &clock, changed, size, style) {
                write_out(&bytes);
            }
        }
        changed = false;
        let _ = std::io::stdout().flush();
        if name.is_some() && releases.values().next().is_some_and(is_done) {
            break;
        }
    }
    if let Some(bytes) = screen.finish() {
        write_out(bytes);
    }
    Ok(ExitCode::SUCCESS)
}

/// What the view shows: the named release in detail (`one`), else the table
/// (with namespaces when watching all of them), and the watch's trouble under it.
fn frame(
    releases: &BTreeMap<(String, String), Release>,
    one: bool,
    all_namespaces: bool,
    trouble: Option<&str>,
    now: Timestamp,
    zone: &TimeZone,
    style: Style,
) -> String {
    let mut frame = if one {
        releases
            .values()
            .next()
            .map(|r| view::render_release(r, now, zone, style))
            .unwrap_or_default()
    } else {
        let list: Vec<Release> = releases.values().cloned().collect();
        view::render_table(&list, now, all_namespaces, style)
    };
    if let Some(t) = trouble {
        frame.push_str(&format!("\n{}\n", style.yellow(t)));
    }
    frame
}

/// A named release is done watching once it is final and the controller has seen its latest spec.
fn is_done(r: &Release) -> bool {
    r.status.as_ref().is_some_and(|s| {
        s.phase.is_some_and(|p| p.is_final())
            && s.observed_generation.unwrap_or_default()
                >= r.metadata.generation.unwrap_or_default()
    })
}

fn write_out(bytes: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Phase, ReleaseStatus};

    fn release(generation: i64, phase: Option<Phase>, observed: Option<i64>) -> Release {
        let mut r = Release::new(
            "train",
            signalman_core::testing::spec()
                .service("a", Vec::<String>::new())
                .build(),
        );
        r.metadata.generation = Some(generation);
        r.status = phase.map(|p| ReleaseStatus {
            phase: Some(p),
            observed_generation: observed,
            ..Default::default()
        });
        r
    }

    fn watched(rs: &[Release]) -> BTreeMap<(String, String), Release> {
        rs.iter()
            .map(|r| ((r.namespace().unwrap_or_default(), r.name_any()), r.clone()))
            .collect()
    }

    #[test]
    fn a_named_watch_shows_the_release_in_detail_and_trouble_under_it() {
        let now = Timestamp::UNIX_EPOCH;
        let one = watched(&[release(1, Some(Phase::Progressing), Some(1))]);
        let f = frame(&one, true, false, None, now, &TimeZone::UTC, Style::plain());
        assert!(f.starts_with("Release train"), "{f}");
        assert!(f.contains("WAVE 1"), "{f}");
        let f = frame(
            &one,
            true,
            false,
            Some("watch interrupted (connection reset); retrying"),
            now,
            &TimeZone::UTC,
            Style::plain(),
        );
        assert!(
            f.ends_with("\n\nwatch interrupted (connection reset); retrying\n"),
            "{f}"
        );
    }

    #[test]
    fn an_unnamed_watch_shows_the_table_with_namespaces_only_across_them() {
        let now = Timestamp::UNIX_EPOCH;
        let mut other = release(1, Some(Phase::Succeeded), Some(1));
        other.metadata.name = Some("later".into());
        other.metadata.namespace = Some("shop".into());
        let all = watched(&[release(1, Some(Phase::Progressing), Some(1)), other]);
        let f = frame(&all, false, true, None, now, &TimeZone::UTC, Style::plain());
        assert!(f.starts_with("NAMESPACE"), "{f}");
        assert_eq!(f.lines().count(), 3, "{f}");
        let f = frame(
            &all,
            false,
            false,
            None,
            now,
            &TimeZone::UTC,
            Style::plain(),
        );
        assert!(f.starts_with("NAME "), "{f}");
    }

    #[test]
    fn a_watch_ends_with_a_final_release_the_controller_has_caught_up_with() {
        assert!(is_done(&release(2, Some(Phase::Succeeded), Some(2))));
        assert!(is_done(&release(2, Some(Phase::RolledBack), Some(2))));
        assert!(is_done(&release(2, Some(Phase::Failed), Some(3))));
    }

    #[test]
    fn a_watch_goes_on_while_the_release_moves_or_its_latest_spec_is_unseen() {
        assert!(!is_done(&release(1, None, None)));
        assert!(!is_done(&release(1, Some(Phase::Progressing), Some(1))));
        assert!(!is_done(&release(1, Some(Phase::Paused), Some(1))));
        // Ended, but someone changed the spec since: the controller may still act on it.
        assert!(!is_done(&release(3, Some(Phase::Succeeded), Some(2))));
        assert!(!is_done(&release(1, Some(Phase::Succeeded), None)));
    }
}
