//! The Signalman operator.

use clap::{Parser, Subcommand};
use kube::CustomResourceExt;
use signalman::api::Release;

#[derive(Parser)]
#[command(name = "signalman", version, about = "Runs release trains on Kubernetes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the Release CustomResourceDefinition as YAML.
    Crd,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd => print!("{}", serde_yaml::to_string(&Release::crd())?),
    }
    Ok(())
}
