//! How a finished train ended, to compare a run that went through a fault
//! (operator killed, API server or etcd restarted, Prometheus flapping,
//! another writer) with an uninterrupted run of the same train next to it.
//!
//! "The same end" means: the same phase, every service in the same phase,
//! every Deployment on the same image, no canary Deployment, Service or
//! route weight left, and the same decisions in the timeline: each service
//! went through the same steps, once each, in order (no step repeated or
//! skipped), and the release itself recorded the same milestones.
//!
//! Timelines are compared per service, not as one interleaved list: services
//! of one wave move in parallel, and which of two canaries became ready first
//! differs between two runs without anything being wrong.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde_json::Value;
use signalman::api::CANARY_OF_LABEL;

use crate::release as rel;

/// Timeline reasons that record what the operator saw, not what it decided:
/// how many there are depends on timing (a Deployment still rolling out when
/// it was looked at, as after an API server restart), so they are left out
/// of the comparison. Every other entry is a decision and must match.
pub const OBSERVATIONS: &[&str] = &["Waiting"];

/// One timeline entry that records a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub reason: String,
    /// Empty for the release's own entries.
    pub service: String,
    pub message: String,
    /// When (RFC 3339); never compared: two runs keep different times.
    pub at: String,
}

/// The end state of a finished Release and its namespace.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The Release's phase.
    pub phase: String,
    /// Each service's phase, by service name.
    pub services: BTreeMap<String, String>,
    /// Each Deployment in the namespace and the image of its first container.
    pub images: BTreeMap<String, String>,
    /// Canary objects still there: Deployments and Services named `*-canary`
    /// or labelled as a canary, HTTPRoute backendRefs to a canary Service.
    pub leftovers: Vec<String>,
    /// The timeline's decisions (without [`OBSERVATIONS`]), oldest first.
    pub timeline: Vec<Entry>,
    /// Every observation left out of `timeline`, counted by reason (for the
    /// test's own assertions, e.g. that a flapping Prometheus was seen).
    pub observations: BTreeMap<String, usize>,
    /// `dependsOn` of each service, from the spec.
    depends_on: BTreeMap<String, Vec<String>>,
}

impl Outcome {
    /// Read Release `name` and the objects of `namespace` now (call it once
    /// the Release has reached its final phase).
    pub async fn capture(client: &Client, namespace: &str, name: &str) -> Outcome {
        let releases = rel::releases(client, namespace);
        let release = rel::get(&releases, name).await;
        let status = &release["status"];
        let mut leftovers = Vec::new();

        let deps: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        let mut images = BTreeMap::new();
        for d in deps.list(&ListParams::default()).await.unwrap() {
            let n = d.name_any();
            if is_canary(&n, d.labels()) {
                leftovers.push(format!("Deployment {n}"));
            }
            images.insert(n, crate::first_image(&d));
        }
        let svcs: Api<Service> = Api::namespaced(client.clone(), namespace);
        for s in svcs.list(&ListParams::default()).await.unwrap() {
            let n = s.name_any();
            if is_canary(&n, s.labels()) {
                leftovers.push(format!("Service {n}"));
            }
        }
        let routes = crate::http_routes(client, namespace);
        for r in routes.list(&ListParams::default()).await.unwrap() {
            for b in backend_refs(&r.data["spec"]) {
                if b.ends_with("-canary") {
                    leftovers.push(format!("HTTPRoute {} backendRef {b}", r.name_any()));
                }
            }
        }

        let mut timeline = Vec::new();
        let mut observations = BTreeMap::new();
        for e in status["timeline"].as_array().into_iter().flatten() {
            let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
            let reason = s("reason");
            if OBSERVATIONS.contains(&reason.as_str()) {
                *observations.entry(reason).or_default() += 1;
            } else {
                timeline.push(Entry {
                    reason,
                    service: s("service"),
                    message: s("message"),
                    at: s("at"),
                });
            }
        }
        let services = status["services"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let s_ = |k: &str| s[k].as_str().unwrap_or("").to_string();
                (s_("name"), s_("phase"))
            })
            .collect();
        let depends_on = release["spec"]["services"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let after: Vec<String> = s["dependsOn"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect();
                (s["name"].as_str().unwrap_or("").to_string(), after)
            })
            .collect();
        Outcome {
            phase: rel::phase(status).to_string(),
            services,
            images,
            leftovers,
            timeline,
            observations,
            depends_on,
        }
    }

    /// The reasons of `service`'s decisions, oldest first (`""`: the release's own).
    pub fn reasons_of(&self, service: &str) -> Vec<&str> {
        self.timeline
            .iter()
            .filter(|e| e.service == service)
            .map(|e| e.reason.as_str())
            .collect()
    }

    /// `(k, of)` of each `step k/of` `service` started, in order.
    pub fn steps_of(&self, service: &str) -> Vec<(u32, u32)> {
        self.timeline
            .iter()
            .filter(|e| e.service == service && e.reason == "StepStarted")
            .map(|e| {
                step_number(&e.message)
                    .unwrap_or_else(|| panic!("StepStarted without `step k/n`: {:?}", e.message))
            })
            .collect()
    }

    /// Panics unless the train's own record is whole: no canary left, each
    /// service's steps started once each in order (all of them when it was
    /// promoted), and no service started before a service it depends on was
    /// promoted.
    pub fn assert_whole(&self) {
        assert!(
            self.leftovers.is_empty(),
            "canary objects left: {:?}",
            self.leftovers
        );
        for (svc, phase) in &self.services {
            let steps = self.steps_of(svc);
            let of = steps.first().map(|s| s.1).unwrap_or(0);
            let want: Vec<(u32, u32)> = (1..=steps.len() as u32).map(|k| (k, of)).collect();
            assert_eq!(
                steps,
                want,
                "{svc}: steps repeated, skipped or out of order:\n{}",
                self.pretty_timeline()
            );
            if phase == "Promoted" || phase == "Restored" {
                assert!(
                    of > 0 && steps.len() as u32 == of,
                    "{svc} ended {phase} after steps {steps:?}:\n{}",
                    self.pretty_timeline()
                );
            }
            let first = self
                .timeline
                .iter()
                .position(|e| e.service == *svc && e.reason == "StepStarted");
            for dep in self.depends_on.get(svc).into_iter().flatten() {
                let promoted = self
                    .timeline
                    .iter()
                    .position(|e| e.service == *dep && e.reason == "Promoted");
                if let Some(first) = first {
                    assert!(
                        promoted.is_some_and(|p| p < first),
                        "{svc} started before {dep}, which it depends on, was promoted:\n{}",
                        self.pretty_timeline()
                    );
                }
            }
        }
    }

    /// The timeline, one decision a line, for failure messages.
    pub fn pretty_timeline(&self) -> String {
        self.timeline
            .iter()
            .map(|e| format!("  {:<14} {:<8} {}", e.reason, e.service, e.message))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Panics unless `faulted` ended like `clean`, the same train run without a
/// fault: same phase, same service phases, same images, nothing left over,
/// the same decisions per service and for the release, each step once.
pub fn assert_same(faulted: &Outcome, clean: &Outcome) {
    clean.assert_whole();
    faulted.assert_whole();
    assert_eq!(faulted.phase, clean.phase, "phase");
    assert_eq!(faulted.services, clean.services, "service phases");
    assert_eq!(faulted.images, clean.images, "Deployment images");
    let mut names: Vec<&str> = vec![""];
    names.extend(clean.services.keys().map(String::as_str));
    for svc in names {
        assert_eq!(
            faulted.reasons_of(svc),
            clean.reasons_of(svc),
            "decisions of {} differ:\n faulted:\n{}\n clean:\n{}",
            if svc.is_empty() { "the release" } else { svc },
            faulted.pretty_timeline(),
            clean.pretty_timeline()
        );
        assert_eq!(faulted.steps_of(svc), clean.steps_of(svc), "{svc}: steps");
    }
}

fn is_canary(name: &str, labels: &BTreeMap<String, String>) -> bool {
    name.ends_with("-canary") || labels.contains_key(CANARY_OF_LABEL)
}

fn backend_refs(spec: &Value) -> Vec<String> {
    spec["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["backendRefs"].as_array().into_iter().flatten())
        .filter_map(|b| b["name"].as_str().map(str::to_string))
        .collect()
}

/// `(k, n)` of a message beginning `step k/n`.
fn step_number(message: &str) -> Option<(u32, u32)> {
    let rest = message.strip_prefix("step ")?;
    let (k, rest) = rest.split_once('/')?;
    let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((k.parse().ok()?, n.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_numbers_are_read_from_the_message() {
        assert_eq!(
            step_number("step 2/3: 50% of traffic on the new version, baking for 3s"),
            Some((2, 3))
        );
        assert_eq!(step_number("canary removed"), None);
    }
}
