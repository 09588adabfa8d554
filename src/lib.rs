//! Signalman: a Kubernetes operator that runs release trains.
//!
//! The pure core lives in the `signalman-core` crate (`src/core/`) and is
//! re-exported here: `api` holds the `Release` resource; `plan`, `engine` and
//! `analysis` decide. This crate is the shell: `traffic` and `controller`
//! observe the cluster and act on the engine's decisions, `plugin` is
//! `kubectl signalman`.

pub use signalman_core::{analysis, api, engine, plan, preflight, rollback_window, text};

pub mod controller;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod plugin;
pub mod traffic;
