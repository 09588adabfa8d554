//! The Signalman operator.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use signalman::api::{Notifications, Release, ReleaseApproval, ReleasePolicy};
use signalman::controller;

#[derive(Parser)]
#[command(
    name = "signalman",
    version,
    about = "Runs release trains on Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML: Release, ReleasePolicy and
    /// ReleaseApproval, or only the one named (by its plural).
    Crd {
        #[arg(value_enum)]
        kind: Option<CrdKind>,
    },
    /// Run the operator until SIGTERM.
    Run(Box<RunArgs>),
}

#[derive(Args)]
struct RunArgs {
    /// Kubeconfig file. Default: $KUBECONFIG, ~/.kube/config, or the in-cluster service account.
    #[arg(long, env = "SIGNALMAN_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Prometheus for Releases that do not set spec.prometheus.address.
    #[arg(
        long,
        env = "SIGNALMAN_PROMETHEUS_URL",
        default_value = "http://prometheus.monitoring:9090"
    )]
    prometheus_url: String,
    /// More Prometheus base URLs a Release may name in spec.prometheus.address
    /// (comma-separated, or the flag repeated); --prometheus-url is always
    /// allowed. A Release naming any other address is refused before anything
    /// moves and no request is sent to it. Matched as one URL: scheme, host,
    /// port and path (scheme and host in any case, the scheme's default port
    /// and a trailing / optional). Default: none, only --prometheus-url.
    #[arg(
        long = "prometheus-allowed-address",
        env = "SIGNALMAN_PROMETHEUS_ALLOWED_ADDRESSES",
        value_delimiter = ',',
        value_name = "URL"
    )]
    prometheus_allowed_addresses: Vec<String>,
    /// Confine every query of a Release to its own namespace: each selector
    /// gets namespace="<the Release's namespace>", and a Release whose query
    /// names another namespace is refused before anything moves. Off unless
    /// given, so that a Prometheus whose series carry no namespace label keeps
    /// working when the binary is upgraded; the chart turns it on.
    #[arg(long, env = "SIGNALMAN_ENFORCE_NAMESPACE", num_args = 0..=1, default_missing_value = "true",
          default_value_t = false, action = clap::ArgAction::Set)]
    enforce_namespace: bool,
    /// The Secret, in the operator's namespace, holding the credentials for
    /// a Prometheus (bearer token, basic auth, CA, client certificate; see
    /// docs/operations.md): NAME for --prometheus-url, ADDRESS=NAME for
    /// another address (comma-separated, or the flag repeated). Credentials
    /// go only to the address they are named for.
    #[arg(
        long,
        env = "SIGNALMAN_PROMETHEUS_AUTH_SECRET",
        value_delimiter = ',',
        value_name = "[ADDRESS=]NAME"
    )]
    prometheus_auth_secret: Vec<String>,
    /// Address serving /metrics, /healthz and /readyz.
    #[arg(long, env = "SIGNALMAN_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "SIGNALMAN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Watch only these namespaces (comma-separated, or the flag repeated):
    /// one watch per namespace and kind. Default: every namespace.
    #[arg(long = "namespace", env = "SIGNALMAN_NAMESPACE", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Run as a shard: take the Releases of the namespaces whose labels match
    /// this label selector (e.g. signalman.dev/shard=payments), following
    /// namespaces as they gain or lose the labels. Excludes --namespace.
    #[arg(
        long,
        env = "SIGNALMAN_NAMESPACE_SELECTOR",
        conflicts_with = "namespaces"
    )]
    namespace_selector: Option<String>,
    /// At most this many Releases are reconciled at once; the others wait
    /// their turn (a reconcile reads memory, so it is short).
    #[arg(long, env = "SIGNALMAN_MAX_CONCURRENT_RECONCILES", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_reconciles: u16,
    /// At most this many Prometheus queries are in flight at once, over
    /// every Release; the others queue in the operator.
    #[arg(long, env = "SIGNALMAN_MAX_CONCURRENT_QUERIES", default_value_t = 32,
          value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_queries: u16,
    /// Act only while holding the leader Lease (for more than one replica).
    #[arg(long, env = "SIGNALMAN_LEADER_ELECT", num_args = 0..=1, default_missing_value = "true",
          default_value_t = false, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Name of the leader Lease.
    #[arg(long, env = "SIGNALMAN_LEASE_NAME", default_value = "signalman-leader")]
    lease_name: String,
    /// Namespace of the leader Lease. Default: $POD_NAMESPACE.
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// How long the Lease stays valid after a renewal (Go duration, e.g. 15s).
    #[arg(long, env = "SIGNALMAN_LEASE_DURATION", default_value = "15s")]
    lease_duration: kube::core::Duration,
    /// /healthz fails once one of the controller's watches has kept failing,
    /// or a reconcile has run, this long (Go duration), so that Kubernetes
    /// restarts a stuck operator.
    #[arg(long, env = "SIGNALMAN_STALL_TIMEOUT", default_value = "60s")]
    stall_timeout: kube::core::Duration,
    /// The most dependencies between services of different owners a Release
    /// may have before it gets a Warning (or, with the policy's
    /// limits.crossTeam: refuse, is stalled), when its ReleasePolicy sets no
    /// limits.crossTeamEdges.
    #[arg(long, env = "SIGNALMAN_CROSS_TEAM_EDGES", default_value_t = signalman::plan::teams::DEFAULT_CROSS_TEAM_EDGES,
          value_parser = clap::value_parser!(i32).range(0..))]
    cross_team_edges: i32,
    /// Webhook receivers told about the transitions of Releases whose
    /// ReleasePolicy sets no notifications: JSON of the policy's
    /// `notifications` field, e.g. {"receivers": [{"name": "release-channel",
    /// "urlFrom": {"name": "signalman-webhooks"}, "format": "slack"}]}. Each
    /// URL is read from that Secret (key `url` unless urlFrom.key says) in
    /// the operator's namespace.
    #[arg(long, env = "SIGNALMAN_NOTIFICATIONS", value_name = "JSON",
          value_parser = parse_notifications)]
    notifications: Option<Notifications>,
}

fn parse_notifications(text: &str) -> Result<Notifications, String> {
    controller::notify::parse_flag(text)
}

/// Timeouts of the controller's client. Its watches long-poll: the API server
/// ends each after `timeoutSeconds` (kube's watcher asks for 290 s) and kube's
/// watcher gives up on one silent for 295 s; the read timeout (idle time
/// between two reads of a response) must outlast both, or a quiet watch would
/// be cut and re-listed every few minutes. It still ends a request whose
/// connection went silent, which kube does not by default (no read timeout).
/// The Lease has its own client with timeouts under the renew deadline
/// ([`signalman::leader::lease_client`]).
fn client_timeouts(config: &mut kube::Config) {
    use std::time::Duration;
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(300));
    config.write_timeout = Some(Duration::from_secs(30));
    // Count from when a request is sent, not from when its pooled
    // connection went idle.
    config.reset_reader_on_write = true;
}

/// Trimmed, without empties and repeats, in order.
fn namespaces(given: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for ns in given.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if !out.iter().any(|o| o == ns) {
            out.push(ns.to_owned());
        }
    }
    out
}

/// The CRDs `signalman crd` prints, by plural (what `crds/` names the files after).
#[derive(Clone, Copy, ValueEnum)]
enum CrdKind {
    Releases,
    Releasepolicies,
    Releaseapprovals,
}

impl CrdKind {
    fn crd(self) -> CustomResourceDefinition {
        match self {
            CrdKind::Releases => Release::crd(),
            CrdKind::Releasepolicies => ReleasePolicy::crd(),
            CrdKind::Releaseapprovals => ReleaseApproval::crd(),
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd { kind } => {
            let kinds = match kind {
                Some(k) => vec![k],
                None => CrdKind::value_variants().to_vec(),
            };
            let docs = kinds
                .iter()
                .map(|k| serde_yaml::to_string(&k.crd()))
                .collect::<Result<Vec<_>, _>>()?;
            print!("{}", docs.join("---\n"));
        }
        Command::Run(args) => {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(run(*args))?;
        }
    }
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    // kube's rustls uses `ring`, the Prometheus client's `aws-lc-rs`; with both
    // compiled in rustls cannot choose, so pick one before any connection.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube_runtime=warn".into());
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter);
    match args.log_format {
        LogFormat::Json => subscriber.json().init(),
        LogFormat::Text => subscriber.init(),
    }
    let config = match &args.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig and not in a cluster; pass --kubeconfig")?,
    };
    let mut config = config;
    client_timeouts(&mut config);
    // Where it runs: $POD_NAMESPACE (the chart sets it; --lease-namespace
    // defaults to it), else the kubeconfig context's (in a pod without it,
    // the ServiceAccount's).
    let operator_namespace = args
        .lease_namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| config.default_namespace.clone());
    let leader_election = if args.leader_elect {
        let lease_duration: std::time::Duration = args.lease_duration.into();
        anyhow::ensure!(
            lease_duration >= std::time::Duration::from_secs(3),
            "--lease-duration must be at least 3s (the leader renews every duration/6)"
        );
        let lease = signalman::leader::LeaseConfig {
            name: args.lease_name,
            namespace: args.lease_namespace.context(
                "--leader-elect needs --lease-namespace (or POD_NAMESPACE): where the Lease lives",
            )?,
            identity: signalman::leader::default_identity(),
            duration: lease_duration,
        };
        Some(controller::Election {
            client: signalman::leader::lease_client(config.clone(), &lease)?,
            lease,
            fence: signalman::leader::Fence::default(),
        })
    } else {
        None
    };
    // With leader election every write of the controller goes through the
    // fence: none leaves the process once the renew deadline has passed.
    let client = match &leader_election {
        Some(election) => signalman::leader::fenced_client(config, election.fence.clone())?,
        None => kube::Client::try_from(config)?,
    };
    let prometheus_auth =
        controller::prometheus_auth::AuthSecrets::parse(&args.prometheus_auth_secret)
            .map_err(|e| anyhow::anyhow!("--prometheus-auth-secret {e}"))?;
    controller::run(
        client,
        controller::Config {
            prometheus_url: args.prometheus_url.trim_end_matches('/').to_string(),
            namespaces: namespaces(args.namespaces),
            namespace_selector: args.namespace_selector.filter(|s| !s.trim().is_empty()),
            max_reconciles: args.max_concurrent_reconciles,
            max_queries: usize::from(args.max_concurrent_queries),
            metrics_addr: args.metrics_addr,
            leader_election,
            stall_timeout: args.stall_timeout.into(),
            cross_team_edges: args.cross_team_edges,
            notifications: args.notifications.unwrap_or_default(),
            operator_namespace,
            enforce_namespace: args.enforce_namespace,
            prometheus_allowed_addresses: args
                .prometheus_allowed_addresses
                .iter()
                .map(|a| a.trim())
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
            prometheus_auth,
        },
    )
    .await
}
