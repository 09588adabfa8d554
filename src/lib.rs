//! Signalman: a Kubernetes operator that runs release trains.
//!
//! `api` holds the `Release` resource; `plan`, `engine` and the judging half of
//! `analysis` are pure and decide; `traffic` and `controller` observe the
//! cluster and act on the engine's decisions.

pub mod analysis;
pub mod api;
pub mod controller;
pub mod engine;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod plan;
pub mod plugin;
pub mod traffic;
