//! `kubectl signalman`: plan, watch and steer release trains.
//!
//! On PATH as `kubectl-signalman`, kubectl runs it for `kubectl signalman ...`.
//! It takes kubectl's connection flags; everything it changes is one of three
//! spec fields (`paused`, `resumeHold`, `abort`) that `kubectl patch` or git can set too.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use signalman::api::Release;
use signalman::plugin::cluster::{self, Connection, Target};
use signalman::plugin::schedule::{ClusterCheck, PlanInput, render_plan};
use signalman::plugin::steer::{self, Steer};
use signalman::plugin::style::Style;
use signalman::plugin::{read_releases, timeline, view};

#[derive(Parser)]
#[command(
    name = "kubectl-signalman",
    bin_name = "kubectl signalman",
    version,
    about = "Plan, watch and steer Signalman release trains",
    after_help = "Examples:\n  kubectl signalman plan -f release.yaml\n  kubectl signalman get checkout-2 -n shop --watch\n  kubectl signalman abort checkout-2 -n shop"
)]
struct Cli {
    /// Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    context: Option<String>,
    /// The namespace (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// Every namespace (`get` only).
    #[arg(short = 'A', long, global = true)]
    all_namespaces: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a Release file and print its waves, steps, rollback order and least duration.
    /// Checks the Deployments and containers in the cluster too when it can reach it.
    Plan {
        /// The Release manifest (`-` for stdin); other kinds in the file are skipped.
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: PathBuf,
        /// Do not contact the cluster: check the file on its own.
        #[arg(long)]
        offline: bool,
    },
    /// Show where releases stand: a table of all, or one in detail.
    Get {
        /// The Release; without it, a table of every Release in the namespace.
        name: Option<String>,
        /// Keep the view up to date; a named release's watch ends when the release does.
        #[arg(short = 'w', long)]
        watch: bool,
        /// Print the object(s) for scripts instead of the view.
        #[arg(short = 'o', long, value_enum)]
        output: Option<Output>,
    },
    /// Pause a release (spec.paused: true): nothing advances, weights stay where they are.
    Pause { name: String },
    /// Lift the release's hold (spec.resumeHold) and/or unpause it (spec.paused: false).
    Resume { name: String },
    /// Abort a release (spec.abort: true): canaries go to 0%, promoted services are restored in reverse order.
    Abort { name: String },
    /// The release's history with timestamps and measurements; the first deviation is marked.
    Timeline { name: String },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Output {
    Json,
    Yaml,
}

/// A failure to report: one sentence, already saying how to fix it.
struct Failure(String);

impl From<cluster::Error> for Failure {
    fn from(e: cluster::Error) -> Self {
        Failure(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(Failure(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let target = Target {
        kubeconfig: cli.kubeconfig.clone(),
        context: cli.context.clone(),
        namespace: cli.namespace.clone(),
    };
    let style = Style::for_stdout();
    if cli.all_namespaces && !matches!(cli.command, Command::Get { .. }) {
        return Err(Failure(
            "-A works with get only; name the Release's namespace with -n".into(),
        ));
    }
    match cli.command {
        Command::Plan { file, offline } => plan(&target, &file, offline, style).await,
        Command::Get {
            name,
            watch,
            output,
        } => {
            let conn = cluster::connect(&target).await?;
            let ns = (!cli.all_namespaces).then(|| conn.namespace.clone());
            if watch {
                watch_releases(&conn, ns, name, output, style).await
            } else {
                get(&conn, ns, name, output, style).await
            }
        }
        Command::Pause { name } => steer_release(&target, &name, steer::pause).await,
        Command::Resume { name } => steer_release(&target, &name, steer::resume).await,
        Command::Abort { name } => steer_release(&target, &name, steer::abort).await,
        Command::Timeline { name } => {
            let conn = cluster::connect(&target).await?;
            let r = conn.get(&conn.namespace, &name).await?;
            print!(
                "{}",
                timeline::render_timeline(&r, &TimeZone::system(), style)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn plan(
    target: &Target,
    file: &PathBuf,
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
        let check = match &conn {
            Err(why) => ClusterCheck::Skipped(why.clone()),
            Ok(c) => {
                let ns = namespace.clone().unwrap_or_else(|| c.namespace.clone());
                let facts = c.facts(&ns, r.metadata.name.as_deref(), &r.spec).await?;
                ClusterCheck::Checked {
                    server: c.server.clone(),
                    facts,
                }
            }
        };
        let input = PlanInput {
            name: r.metadata.name.as_deref(),
            namespace: namespace.as_deref(),
            spec: &r.spec,
        };
        let (text, valid) = render_plan(&input, &check, style);
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

async fn get(
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

/// The Release `name` in `ns`, or the only one of that name in any namespace (`-A`).
async fn find(conn: &Connection, ns: Option<&str>, name: &str) -> Result<Release, Failure> {
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

fn encode<T: serde::Serialize>(value: &T, output: Output) -> Result<String, Failure> {
    match output {
        Output::Json => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| Failure(e.to_string())),
        Output::Yaml => serde_yaml::to_string(value).map_err(|e| Failure(e.to_string())),
    }
}

/// Redraw in place on a terminal; elsewhere print a new block whenever the release changes.
async fn watch_releases(
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
                        screen.finish();
                        return Err(Failure(format!("Release {} was deleted", r.name_any())));
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let msg = format!("watch interrupted ({e}); retrying");
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
            let mut frame = match &name {
                Some(_) => releases
                    .values()
                    .next()
                    .map(|r| view::render_release(r, now, &zone, style))
                    .unwrap_or_default(),
                None => {
                    let list: Vec<Release> = releases.values().cloned().collect();
                    view::render_table(&list, now, ns.is_none(), style)
                }
            };
            if let Some(t) = &trouble {
                frame.push_str(&format!("\n{}\n", style.yellow(t)));
            }
            screen.show(&frame, now, style, changed);
        }
        changed = false;
        let _ = std::io::stdout().flush();
        if name.is_some() && releases.values().next().is_some_and(is_done) {
            break;
        }
    }
    screen.finish();
    Ok(ExitCode::SUCCESS)
}

/// A named release is done watching once it is final and the controller has seen its latest spec.
fn is_done(r: &Release) -> bool {
    r.status.as_ref().is_some_and(|s| {
        s.phase.is_some_and(|p| p.is_final())
            && s.observed_generation.unwrap_or_default()
                >= r.metadata.generation.unwrap_or_default()
    })
}

/// The terminal (redraw in place) or a pipe (append a block per change).
struct Screen {
    tty: bool,
    last: String,
    /// Terminal rows the previous frame took, to move back over it.
    rows: usize,
    drawn: bool,
}

impl Screen {
    fn new(tty: bool) -> Screen {
        Screen {
            tty,
            last: String::new(),
            rows: 0,
            drawn: false,
        }
    }

    fn show(&mut self, frame: &str, now: Timestamp, style: Style, changed: bool) {
        let mut out = std::io::stdout().lock();
        if self.tty {
            let footer = style.dim(&format!(
                "updated {} · Ctrl-C to stop watching",
                view::local_time(now, &TimeZone::system())
            ));
            let lines: Vec<&str> = frame.lines().chain(["", footer.as_str()]).collect();
            let (width, height) = terminal_size().unwrap_or((80, 24));
            let rows: usize = lines
                .iter()
                .map(|l| visible_width(l).max(1).div_ceil(width))
                .sum();
            let mut buf = String::new();
            if !self.drawn {
                buf.push_str("\x1b[?25l");
            }
            if rows + 1 >= height {
                // Taller than the screen: moving up cannot reach the top, so start from a clean screen.
                buf.push_str("\x1b[H\x1b[2J");
            } else if self.rows > 0 {
                // Back over the previous frame only, so what the terminal showed before stays.
                buf.push_str(&format!("\x1b[{}A\r", self.rows));
            }
            for line in &lines {
                buf.push_str(line);
                buf.push_str("\x1b[K\n");
            }
            buf.push_str("\x1b[J");
            let _ = out.write_all(buf.as_bytes());
            self.rows = rows;
            self.drawn = true;
        } else if changed && frame != self.last {
            let _ = writeln!(out, "--- {}", view::local_time(now, &TimeZone::system()));
            let _ = out.write_all(frame.as_bytes());
            self.last = frame.to_owned();
        }
    }

    fn finish(&mut self) {
        if self.tty && self.drawn {
            let _ = std::io::stdout().write_all(b"\x1b[?25h");
            let _ = std::io::stdout().flush();
        }
    }
}

/// Columns a line takes on screen: escape sequences take none.
fn visible_width(line: &str) -> usize {
    let mut n = 0;
    let mut in_escape = false;
    for c in line.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, c) if c.is_ascii_alphabetic() => in_escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

/// `(columns, rows)` of the terminal on stdout.
fn terminal_size() -> Option<(usize, usize)> {
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we pass and reads nothing else.
    let ws = unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) != 0 {
            return None;
        }
        ws
    };
    (ws.ws_col > 0 && ws.ws_row > 0).then(|| (usize::from(ws.ws_col), usize::from(ws.ws_row)))
}

async fn steer_release(
    target: &Target,
    name: &str,
    decide: fn(&Release) -> Result<Steer, steer::Refusal>,
) -> Result<ExitCode, Failure> {
    let conn = cluster::connect(target).await?;
    let ns = conn.namespace.clone();
    let r = conn.get(&ns, name).await?;
    match decide(&r) {
        Ok(s) => {
            conn.patch(&ns, name, &s.patch).await?;
            println!("{}", s.says);
            println!("  done with: {}", steer::kubectl_equivalent(&r, &s));
            println!("  follow it: kubectl signalman get {name} -n {ns} --watch");
            Ok(ExitCode::SUCCESS)
        }
        Err(refusal) if refusal.done => {
            println!("{}", refusal.message);
            Ok(ExitCode::SUCCESS)
        }
        Err(refusal) => Err(Failure(refusal.message)),
    }
}
