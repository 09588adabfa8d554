//! What each `kubectl signalman` command does, given its parsed arguments:
//! read the cluster or a file, render with the pure views, print, and say
//! which exit code the command ends with. The bin parses and dispatches here.

use std::path::Path;
use std::process::ExitCode;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use kube::ResourceExt;

use crate::api::Release;

use signalman_core::policy;

use super::approve;
use super::cluster::{self, Connection, Target};
use super::report;
use super::schedule::{ClusterCheck, GoNoGo, PlanInput, PolicyRead, render_plan_with};
use super::steer::{self, Steer};
use super::style::Style;
use super::untrusted;
use super::{read_releases, timeline, view};

/// How `get` prints objects for scripts (`-o`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Json,
    Yaml,
}

/// A failure to report: one sentence, already saying how to fix it.
#[derive(Debug)]
pub struct Failure(pub String);

impl Failure {
    /// The sentence as the terminal gets it: it may quote the API server or a Release.
    pub fn shown(&self) -> std::borrow::Cow<'_, str> {
        untrusted::escape(&self.0)
    }
}

impl From<cluster::Error> for Failure {
    fn from(e: cluster::Error) -> Self {
        Failure(e.to_string())
    }
}

/// `plan -f FILE`: check every Release in the file, against the cluster when it can be reached.
pub async fn plan(
    target: &Target,
    file: &Path,
    offline: bool,
    style: Style,
) -> Result<ExitCode, Failure> {
    let shown = file.display().to_string();
    let text = if shown == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| Failure(format!("reading stdin: {e}")))?
    } else {
        std::fs::read_to_string(file).map_err(|e| {
            Failure(format!(
                "cannot read {shown}: {e}; pass the Release manifest with -f"
            ))
        })?
    };
    let releases = read_releases(&text).map_err(|e| Failure(format!("{shown}: {e}")))?;
    if releases.is_empty() {
        return Err(Failure(format!(
            "{shown} holds no Release; a Release document has apiVersion: signalman.dev/v1alpha1 and kind: Release"
        )));
    }

    // The cluster is a bonus: without one, the file is still checked on its own.
    let conn = if offline {
        Err("--offline".to_owned())
    } else {
        match cluster::connect(target).await {
            Ok(c) => match c.check().await {
                Ok(()) => Ok(c),
                Err(cluster::Error::CrdMissing { .. }) => {
                    eprintln!(
                        "note: the Release CRD is not installed in the cluster at {}; install it with kubectl apply -f crds/",
                        c.server
                    );
                    Ok(c)
                }
                Err(cluster::Error::Unreachable { server, reason, .. }) => {
                    Err(format!("the cluster at {server} is unreachable: {reason}"))
                }
                Err(e) => Err(e.to_string()),
            },
            Err(cluster::Error::Kubeconfig(_)) => Err(
                "no kubeconfig; use --kubeconfig to check Deployments and containers too"
                    .to_owned(),
            ),
            Err(e) => Err(e.to_string()),
        }
    };

    let mut all_valid = true;
    for (i, r) in releases.iter().enumerate() {
        let namespace = r
            .metadata
            .namespace
            .clone()
            .or_else(|| conn.as_ref().ok().map(|c| c.namespace.clone()));
        let (check, policy) = match &conn {
            Err(why) => (
                ClusterCheck::Skipped(why.clone()),
                PolicyRead::NotRead(why.clone()),
            ),
            Ok(c) => {
                let ns = namespace.clone().unwrap_or_else(|| c.namespace.clone());
                let facts = c.facts(&ns, r.metadata.name.as_deref(), &r.spec).await?;
                let policy = match c.policy_for(&ns, &r.spec).await {
                    Ok(observed) => PolicyRead::Read(Box::new(observed)),
                    Err(why) => PolicyRead::NotRead(why),
                };
                (
                    ClusterCheck::Checked {
                        server: c.server.clone(),
                        facts,
                    },
                    policy,
                )
            }
        };
        let go = GoNoGo {
            policy,
            now: Timestamp::now(),
        };
        let input = PlanInput {
            name: r.metadata.name.as_deref(),
            namespace: namespace.as_deref(),
            spec: &r.spec,
        };
        let (text, valid) = render_plan_with(&input, &check, &go, style);
        if i > 0 {
            println!();
        }
        print!("{text}");
        all_valid &= valid;
    }
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `get [NAME] [--watch]`: the table of releases, or one in detail; in
/// `all_namespaces` when asked (`-A`), else in the connection's namespace.
pub async fn get(
    target: &Target,
    all_namespaces: bool,
    name: Option<String>,
    watch: bool,
    output: Option<Output>,
    style: Style,
) -> Result<ExitCode, Failure> {
    let conn = cluster::connect(target).await?;
    let ns = (!all_namespaces).then(|| conn.namespace.clone());
    if watch {
        super::watch::watch(&conn, ns, name, output, style).await
    } else {
        show(&conn, ns, name, output, style).await
    }
}

async fn show(
    conn: &Connection,
    ns: Option<String>,
    name: Option<String>,
    output: Option<Output>,
    style: Style,
) -> Result<ExitCode, Failure> {
    let now = Timestamp::now();
    match name {
        Some(name) => {
            let r = find(conn, ns.as_deref(), &name).await?;
            match output {
                Some(o) => print!("{}", encode(&r, o)?),
                None => print!(
                    "{}",
                    view::render_release(&r, now, &TimeZone::system(), style)
                ),
            }
        }
        None => {
            let list = conn.list(ns.as_deref()).await?;
            match output {
                Some(o) => {
                    let list =
                        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": list});
                    print!("{}", encode(&list, o)?);
                }
                None => {
                    if list.is_empty() {
                        let where_ = ns
                            .map(|n| format!("namespace {n}"))
                            .unwrap_or_else(|| "any namespace".into());
                        println!("No Releases in {where_}.");
                    } else {
                        print!("{}", view::render_table(&list, now, ns.is_none(), style));
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `timeline NAME`.
pub async fn timeline(target: &Target, name: &str, style: Style) -> Result<ExitCode, Failure> {
    let conn = cluster::connect(target).await?;
    let r = conn.get(&conn.namespace, name).await?;
    print!(
        "{}",
        timeline::render_timeline(&r, &TimeZone::system(), style)
    );
    Ok(ExitCode::SUCCESS)
}

/// The Release `name` in `ns`, or the only one of that name in any namespace (`-A`).
pub(super) async fn find(
    conn: &Connection,
    ns: Option<&str>,
    name: &str,
) -> Result<Release, Failure> {
    if let Some(ns) = ns {
        return Ok(conn.get(ns, name).await?);
    }
    let mut found: Vec<Release> = conn
        .list(None)
        .await?
        .into_iter()
        .filter(|r| r.name_any() == name)
        .collect();
    match found.len() {
        0 => Err(Failure(format!(
            "no Release \"{name}\" in any namespace; list them with kubectl signalman get -A"
        ))),
        1 => Ok(found.remove(0)),
        _ => Err(Failure(format!(
            "Releases named \"{name}\" exist in namespaces {}; pick one with -n",
            found
                .iter()
                .map(|r| r.namespace().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

pub(super) fn encode<T: serde::Serialize>(value: &T, output: Output) -> Result<String, Failure> {
    match output {
        Output::Json => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| Failure(e.to_string())),
        Output::Yaml => serde_yaml::to_string(value).map_err(|e| Failure(e.to_string())),
    }
}

/// `approve NAME --gate G | --step SERVICE/N | --window -m TEXT`: check, create the
/// approval as the authenticated user, and say what it unblocks.
pub async fn approve(
    target: &Target,
    name: &str,
    args: &approve::Args<'_>,
) -> Result<ExitCode, Failure> {
    // Bad arguments are refused before the cluster is asked anything.
    approve::parse(args).map_err(Failure)?;
    let conn = cluster::connect(target).await?;
    let ns = conn.namespace.clone();
    let said = approve_in(&conn, &ns, name, args).await?;
    for line in said {
        println!("{}", untrusted::escape(&line));
    }
    Ok(ExitCode::SUCCESS)
}

/// What `approve` does once connected: the lines it prints, the first saying
/// what was (or already had been) approved. The dashboard's approve button
/// calls this too, so both check and create exactly the same way.
pub async fn approve_in(
    conn: &Connection,
    ns: &str,
    name: &str,
    args: &approve::Args<'_>,
) -> Result<Vec<String>, Failure> {
    let (what, comment) = approve::parse(args).map_err(Failure)?;
    let release = conn.get(ns, name).await?;
    let user = conn.whoami().await?;
    let applied = match release.status.as_ref().and_then(|s| s.policy.clone()) {
        Some(p) => Some(p),
        // Before the controller has written it: the policy it will follow, resolved as it resolves it.
        None => match conn.policy_for(ns, &release.spec).await {
            Ok(observed) => Some(policy::applied(&release.spec, &observed)),
            Err(why) => {
                eprintln!(
                    "note: {}; checking against the Release alone",
                    untrusted::escape(&why)
                );
                None
            }
        },
    };
    approve::check(&release, applied.as_ref(), &what, &user).map_err(Failure)?;
    let object = approve::approval(&release, &what, &user, &comment);
    let mut said = Vec::new();
    match conn.create_approval(&object).await? {
        cluster::Created::New(a) => {
            said.push(format!(
                "{user} approved {} of Release {name} (ReleaseApproval {}).",
                what.describe(),
                a.name_any()
            ));
        }
        cluster::Created::Existing(a) => {
            let at = a
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| format!(" at {}", t.0))
                .unwrap_or_default();
            said.push(format!(
                "you already approved {} of Release {name}{at} (ReleaseApproval {}: {:?}); an approval cannot be changed, so nothing was created",
                what.describe(),
                a.name_any(),
                a.spec.comment
            ));
        }
    }
    said.push(format!(
        "  this unblocks: {}",
        approve::unblocks(&release, applied.as_ref(), &what)
    ));
    said.push(format!(
        "  follow it: kubectl signalman get {name} -n {ns} --watch"
    ));
    Ok(said)
}

/// `pause`, `resume` or `abort NAME`: patch the spec field that `decide` picks, and say what follows.
pub async fn steer_release(
    target: &Target,
    name: &str,
    decide: fn(&Release) -> Result<Steer, steer::Refusal>,
) -> Result<ExitCode, Failure> {
    let conn = cluster::connect(target).await?;
    let ns = conn.namespace.clone();
    match steer_in(&conn, &ns, name, decide).await? {
        Steered::Done(lines) => {
            for line in lines {
                println!("{}", untrusted::escape(&line));
            }
            Ok(ExitCode::SUCCESS)
        }
        Steered::Already(message) => {
            println!("{}", untrusted::escape(&message));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What a steering command did: the lines it says after patching, or why
/// nothing needed patching (the release is already where it would put it).
#[derive(Debug)]
pub enum Steered {
    Done(Vec<String>),
    Already(String),
}

/// `pause`, `resume` or `abort` once connected: read the Release, let
/// `decide` pick the patch (or refuse), apply it. The dashboard's buttons call
/// this too, so a button does exactly what the command does.
pub async fn steer_in(
    conn: &Connection,
    ns: &str,
    name: &str,
    decide: fn(&Release) -> Result<Steer, steer::Refusal>,
) -> Result<Steered, Failure> {
    let r = conn.get(ns, name).await?;
    match decide(&r) {
        Ok(s) => {
            conn.patch(ns, name, &s.patch).await?;
            Ok(Steered::Done(vec![
                s.says.clone(),
                format!("  done with: {}", steer::kubectl_equivalent(&r, &s)),
                format!("  follow it: kubectl signalman get {name} -n {ns} --watch"),
            ]))
        }
        Err(refusal) if refusal.done => Ok(Steered::Already(refusal.message)),
        Err(refusal) => Err(Failure(refusal.message)),
    }
}

/// `report NAME --audience A [-o markdown|json]`: the completion report for one audience.
/// The audience is checked before the cluster is asked anything.
pub async fn report(
    target: &Target,
    name: &str,
    audience: &str,
    format: report::Format,
) -> Result<ExitCode, Failure> {
    let audience = report::Audience::parse(audience).map_err(Failure)?;
    let conn = cluster::connect(target).await?;
    let r = conn.get(&conn.namespace, name).await?;
    print!("{}", report::render(&r, audience, format).map_err(Failure)?);
    Ok(ExitCode::SUCCESS)
}

/// `rollback NAME [--yes]`: reverse a succeeded release within its rollback
/// window. What the Release itself shows is checked first; then it says what
/// will happen and, unless `--yes`, asks on the terminal before the one patch.
pub async fn rollback(target: &Target, name: &str, yes: bool) -> Result<ExitCode, Failure> {
    let conn = cluster::connect(target).await?;
    let ns = conn.namespace.clone();
    let r = conn.get(&ns, name).await?;
    let s = match steer::rollback(&r, Timestamp::now()) {
        Ok(s) => s,
        Err(refusal) if refusal.done => {
            println!("{}", untrusted::escape(&refusal.message));
            return Ok(ExitCode::SUCCESS);
        }
        Err(refusal) => return Err(Failure(refusal.message)),
    };
    let user = conn.whoami().await?;
    let s = steer::asked_by(s, &user);
    println!("{}", untrusted::escape(&s.says));
    if !yes && !confirmed(name)? {
        println!("Nothing was changed.");
        return Ok(ExitCode::FAILURE);
    }
    conn.patch(&ns, name, &s.patch).await?;
    println!(
        "  done with: {}",
        untrusted::escape(&steer::kubectl_equivalent(&r, &s))
    );
    println!(
        "  follow it: kubectl signalman get {} -n {} --watch   (a refusal shows there, with what changed)",
        untrusted::escape(name),
        untrusted::escape(&ns)
    );
    Ok(ExitCode::SUCCESS)
}

/// Asks on the terminal; without one there is no one to ask, so `--yes` must say it.
fn confirmed(name: &str) -> Result<bool, Failure> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(Failure(format!(
            "rollback of Release {name} not confirmed: there is no terminal to ask on; run it again with --yes"
        )));
    }
    print!("Roll back Release {}? [y/N] ", untrusted::escape(name));
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure(format!("reading the answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_shown_escaped_since_it_may_quote_the_server_or_a_release() {
        let f = Failure("Release \"x\" was refused: \x1b]0;owned\x07".into());
        assert_eq!(
            f.shown(),
            "Release \"x\" was refused: \\u{1b}]0;owned\\u{7}"
        );
    }
}
