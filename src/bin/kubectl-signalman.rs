//! `kubectl signalman`: plan, watch and steer release trains.
//!
//! On PATH as `kubectl-signalman`, kubectl runs it for `kubectl signalman ...`.
//! It takes kubectl's connection flags; everything it changes is one of four
//! spec fields (`paused`, `resumeHold`, `abort`, `rollback`) that `kubectl patch` or git
//! can set too, or a `ReleaseApproval` it creates as the user the API server authenticated.
//! This file parses the arguments; the commands are in `signalman::plugin`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use signalman::plugin::cluster::Target;
use signalman::plugin::commands::{self, Failure, Output};
use signalman::plugin::style::Style;
use signalman::plugin::{approve, dashboard, report, steer};

#[derive(Parser)]
#[command(
    name = "kubectl-signalman",
    bin_name = "kubectl signalman",
    version,
    about = "Plan, watch and steer Signalman release trains",
    after_help = "Examples:\n  kubectl signalman plan -f release.yaml\n  kubectl signalman approve checkout-2 -n shop --gate change-board -m \"CAB-112 approved\"\n  kubectl signalman get checkout-2 -n shop --watch\n  kubectl signalman abort checkout-2 -n shop\n  kubectl signalman report checkout-2 -n shop --audience support\n  kubectl signalman rollback checkout-2 -n shop\n  kubectl signalman dashboard -A --open"
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
    /// Every namespace (`get` and `dashboard` only).
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
    /// Reverse a Succeeded release within its rollback window (spec.rollback: true):
    /// flags first, then every promoted service restored to its baseline in rollback order.
    Rollback {
        name: String,
        /// Do not ask for confirmation (needed when there is no terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// The release's history with timestamps and measurements; the first deviation is marked.
    Timeline { name: String },
    /// The completion report of a finished release, written for one audience.
    Report {
        /// The Release.
        name: String,
        /// engineering, product, support or leadership.
        #[arg(long, value_name = "AUDIENCE")]
        audience: String,
        /// markdown (default) or json.
        #[arg(short = 'o', long, value_enum, default_value = "markdown")]
        output: report::Format,
    },
    /// Serve a live web view of every release on this machine, with your credentials.
    /// Read-only unless --allow-actions; bound to 127.0.0.1 unless --address.
    Dashboard {
        /// The port to serve on.
        #[arg(long, default_value_t = 3100)]
        port: u16,
        /// The address to listen on. Anyone who can reach it sees every Release
        /// you can see, with your credentials: keep the default 127.0.0.1 unless
        /// the machine's network is yours alone.
        #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
        address: String,
        /// Open the page in the desktop's browser (xdg-open, or open on macOS).
        #[arg(long)]
        open: bool,
        /// Show pause, resume, abort and approve buttons that write to the cluster as you.
        #[arg(long)]
        allow_actions: bool,
    },
    /// Approve one thing a release waits for, as yourself: an approval gate, a step, or the window override.
    /// Prints what the approval unblocks; approving the same thing again changes nothing.
    Approve {
        /// The Release.
        name: String,
        /// An approval gate: one of spec.gates with approval: true, `approval` or `review`.
        #[arg(long, value_name = "GATE")]
        gate: Option<String>,
        /// A step that waits for an approval: SERVICE/N, N counted from 1 as `get` shows steps.
        #[arg(long, value_name = "SERVICE/N")]
        step: Option<String>,
        /// The window override (the Release needs spec.override.justification).
        #[arg(long)]
        window: bool,
        /// What you checked, or why you approve (required).
        #[arg(short = 'm', long = "message", value_name = "TEXT")]
        message: Option<String>,
    },
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
        Err(failure) => {
            eprintln!("error: {}", failure.shown());
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
    if cli.all_namespaces && !matches!(cli.command, Command::Get { .. } | Command::Dashboard { .. })
    {
        return Err(Failure(
            "-A works with get and dashboard only; name the Release's namespace with -n".into(),
        ));
    }
    match cli.command {
        Command::Plan { file, offline } => commands::plan(&target, &file, offline, style).await,
        Command::Get {
            name,
            watch,
            output,
        } => commands::get(&target, cli.all_namespaces, name, watch, output, style).await,
        Command::Pause { name } => commands::steer_release(&target, &name, steer::pause).await,
        Command::Resume { name } => commands::steer_release(&target, &name, steer::resume).await,
        Command::Abort { name } => commands::steer_release(&target, &name, steer::abort).await,
        Command::Rollback { name, yes } => commands::rollback(&target, &name, yes).await,
        Command::Dashboard {
            port,
            address,
            open,
            allow_actions,
        } => {
            let args = dashboard::Args {
                address,
                port,
                open,
                allow_actions,
            };
            dashboard::dashboard(&target, cli.all_namespaces, &args).await
        }
        Command::Timeline { name } => commands::timeline(&target, &name, style).await,
        Command::Report {
            name,
            audience,
            output,
        } => commands::report(&target, &name, &audience, output).await,
        Command::Approve {
            name,
            gate,
            step,
            window,
            message,
        } => {
            let args = approve::Args {
                gate: gate.as_deref(),
                step: step.as_deref(),
                window,
                message: message.as_deref(),
            };
            commands::approve(&target, &name, &args).await
        }
    }
}
