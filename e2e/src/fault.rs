//! The fault matrix's trains (`e2e/tests/fault_*.rs`): a train of several
//! services in waves with short bakes, started in a namespace of its own
//! with its own operator, run to its end and captured as an [`Outcome`], to
//! compare a run that went through a fault with an uninterrupted one.

use std::time::Duration;

use kube::api::Api;
use serde_json::Value;
use signalman::api::Release;

use crate::operator::Launch;
use crate::outcome::Outcome;
use crate::release::{self as rel, release, svc};
use crate::{Scenario, WebApp};

/// The Release's name in every fault test.
pub const NAME: &str = "train";

/// A train: services as `(name, dependsOn)`, each moving its Deployment
/// from `:v1` to `:v2` through `steps` (weight, bake seconds), measured every
/// second ([`rel::error_rate_analysis`]). With `bad`, that service's new
/// version fails (30 % 5xx), so the train rolls back once it is reached.
#[derive(Clone)]
pub struct Train {
    release: Release,
    apps: Vec<WebApp>,
    ends: &'static str,
}

impl Train {
    pub fn new(services: &[(&str, &[&str])], steps: &[(i32, u64)], bad: Option<&str>) -> Train {
        let mut r = release(NAME).defaults(steps);
        for (name, after) in services {
            let s = svc(name).after(after);
            r = r.service(if bad == Some(*name) {
                s.error_rate("0.3")
            } else {
                s
            });
        }
        Train {
            release: r.build(),
            // minReadySeconds makes promotions and restorations last long
            // enough for a fault to land in them.
            apps: services
                .iter()
                .map(|(n, _)| WebApp::new(n).min_ready_seconds(1))
                .collect(),
            ends: if bad.is_some() {
                "RolledBack"
            } else {
                "Succeeded"
            },
        }
    }

    /// `errorLimit` of the analysis (default 1).
    pub fn error_limit(mut self, limit: i32) -> Train {
        if let Some(a) = self
            .release
            .spec
            .defaults
            .as_mut()
            .and_then(|d| d.analysis.as_mut())
        {
            a.error_limit = Some(limit);
        }
        self
    }

    /// The phase it ends in: `Succeeded`, or `RolledBack` with a bad service.
    pub fn ends(&self) -> &'static str {
        self.ends
    }

    /// A namespace `<prefix>-<random>` with its operator and the apps on
    /// `:v1`, and the Release applied.
    pub async fn start(&self, prefix: &str) -> Running {
        self.start_with(prefix, |l| l).await
    }

    /// [`Train::start`] with the operator's launch changed by `launch`.
    pub async fn start_with(&self, prefix: &str, launch: impl FnOnce(Launch) -> Launch) -> Running {
        let sc = Scenario::start_with(prefix, launch).await;
        sc.deploy(&self.apps).await;
        let api = sc.apply(&self.release).await;
        Running {
            sc,
            api,
            ends: self.ends,
        }
    }

    /// Start it and run it to its end without a fault.
    pub async fn run_clean(&self, prefix: &str) -> Outcome {
        let outcome = self.start(prefix).await.finish().await;
        assert_eq!(outcome.phase, self.ends, "the uninterrupted run");
        outcome
    }
}

/// A train under way.
pub struct Running {
    pub sc: Scenario,
    pub api: Api<Release>,
    ends: &'static str,
}

impl Running {
    /// Poll the status until `check` holds (2 minutes at most); return it.
    pub async fn wait(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        rel::wait_status(&self.api, NAME, what, Duration::from_secs(120), check).await
    }

    /// The status now.
    pub async fn status(&self) -> Value {
        rel::status(&self.api, NAME).await
    }

    /// Wait for the phase the train ends in, capture the outcome, stop the
    /// operator and delete the namespace.
    pub async fn finish(self) -> Outcome {
        rel::wait_phase(&self.api, NAME, self.ends, Duration::from_secs(240)).await;
        let outcome = Outcome::capture(&self.sc.client, self.sc.ns(), NAME).await;
        self.sc.end().await;
        outcome
    }
}

/// Whether `service`'s current step bakes.
pub fn baking(status: &Value, service: &str) -> bool {
    rel::service(status, service).is_some_and(|s| s["bakeStartedAt"].is_string())
}

/// `service`'s phase (`""` before it has one).
pub fn service_phase<'a>(status: &'a Value, service: &str) -> &'a str {
    rel::service(status, service)
        .and_then(|s| s["phase"].as_str())
        .unwrap_or("")
}

/// A seeded pseudo-random sequence (splitmix64), so a run that failed at
/// random moments can be replayed with the same moments.
pub struct Seeded {
    pub seed: u64,
    state: u64,
}

impl Seeded {
    /// Seeded from the environment variable `var` when set, else from the
    /// clock; prints the seed and how to replay it.
    pub fn from_env(var: &str) -> Seeded {
        let seed = match std::env::var(var) {
            Ok(s) if !s.is_empty() => s
                .parse()
                .unwrap_or_else(|e| panic!("{var}={s:?} is not a u64 seed: {e}")),
            _ => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64,
        };
        eprintln!("seed {seed} (replay: {var}={seed})");
        Seeded { seed, state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A duration in `[lo, hi)`, to the millisecond.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = (hi - lo).as_millis().max(1) as u64;
        lo + Duration::from_millis(self.next_u64() % span)
    }
}
