//! The pure core of Signalman: what a Release is ([`api`]), the order its
//! services move in ([`plan`]), what to do next ([`engine`]), the names of a
//! migration's Jobs ([`migration`]), how a
//! measurement is judged ([`analysis`]), what the cluster must hold before a
//! Release starts ([`preflight`]), whether a finished one can still be
//! rolled back ([`rollback_window`]), and how durations and bounds are written
//! wherever they are shown ([`text`]). Data in, data out: no client, no
//! clock, no network. The `signalman` crate is the shell that observes the
//! cluster and acts on these decisions.

pub mod analysis;
pub mod api;
pub mod engine;
pub mod migration;
pub mod plan;
pub mod policy;
pub mod preflight;
pub mod rollback_window;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod text;

/// Property tests over hostile input (`make fuzz` runs them longer).
#[cfg(test)]
mod fuzz;
