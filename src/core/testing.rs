//! One way to build a [`ReleaseSpec`] for tests, property tests and benchmarks.
//!
//! Compiled for this crate's own tests and, through the `testing` feature, for
//! the `signalman` crate's tests and benches; never part of a release build.
//! A test states only what it is about (the graph, the steps, a metric) and
//! gets the same valid defaults as every other test for the rest.

use std::time::Duration;

use k8s_openapi::api::batch::v1::JobTemplateSpec;

use crate::api::{
    Analysis, Change, Compare, Defaults, FlagChange, Irreversible, Metric, MigrationJob,
    ReleaseSpec, ServiceHold, ServiceSpec, Step, Verify,
};

/// A release owned by `team` with no services yet; add them with
/// [`SpecBuilder::service`] or [`SpecBuilder::services`].
pub fn spec() -> SpecBuilder {
    SpecBuilder(ReleaseSpec {
        owner: "team".into(),
        ..Default::default()
    })
}

/// A [`ReleaseSpec`] under construction.
#[derive(Clone, Debug)]
pub struct SpecBuilder(ReleaseSpec);

impl SpecBuilder {
    pub fn owner(mut self, owner: &str) -> Self {
        self.0.owner = owner.into();
        self
    }

    /// A service whose Deployment has its name and whose change sets the image
    /// of container `main` to `<name>:v2`, so the simulated cluster finds both.
    pub fn service(
        mut self,
        name: impl Into<String>,
        depends_on: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        let name = name.into();
        self.0.services.push(ServiceSpec {
            deployment: name.clone(),
            owner: None,
            change: Change {
                images: [("main".to_owned(), format!("{name}:v2"))].into(),
                ..Default::default()
            },
            depends_on: depends_on.into_iter().map(Into::into).collect(),
            traffic: None,
            steps: None,
            analysis: None,
            name,
            ..Default::default()
        });
        self
    }

    /// A migration service whose forward and rollback Jobs run `migrate up` and `migrate down`.
    pub fn job(
        mut self,
        name: impl Into<String>,
        depends_on: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.0.services.push(ServiceSpec {
            name: name.into(),
            job: Some(MigrationJob {
                forward: job_template("up"),
                rollback: Some(job_template("down")),
                irreversible: None,
                timeout: None,
            }),
            depends_on: depends_on.into_iter().map(Into::into).collect(),
            ..Default::default()
        });
        self
    }

    /// A migration service with no rollback Job, for `justification`.
    pub fn irreversible_job(
        mut self,
        name: impl Into<String>,
        depends_on: impl IntoIterator<Item = impl Into<String>>,
        justification: &str,
    ) -> Self {
        self = self.job(name, depends_on);
        let job = self.0.services.last_mut().and_then(|s| s.job.as_mut());
        if let Some(job) = job {
            job.rollback = None;
            job.irreversible = Some(Irreversible {
                justification: justification.into(),
            });
        }
        self
    }

    /// A flag service setting `keys` in ConfigMap `config_map`.
    pub fn flag(
        mut self,
        name: impl Into<String>,
        depends_on: impl IntoIterator<Item = impl Into<String>>,
        config_map: &str,
        keys: &[(&str, &str)],
    ) -> Self {
        self.0.services.push(ServiceSpec {
            name: name.into(),
            flag: Some(FlagChange {
                config_map: Some(config_map.into()),
                keys: keys
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                bake: None,
            }),
            depends_on: depends_on.into_iter().map(Into::into).collect(),
            ..Default::default()
        });
        self
    }

    /// Service `name` (added before) is held for `reason`.
    pub fn hold(mut self, name: &str, reason: &str) -> Self {
        if let Some(s) = self.0.services.iter_mut().find(|s| s.name == name) {
            s.hold = Some(ServiceHold {
                reason: reason.into(),
            });
        }
        self
    }

    /// Service `name` (added before) is owned by `owner`.
    pub fn owned(mut self, name: &str, owner: &str) -> Self {
        if let Some(s) = self.0.services.iter_mut().find(|s| s.name == name) {
            s.owner = Some(owner.into());
        }
        self
    }

    /// One [`service`](Self::service) per `(name, dependencies)`, in this order.
    pub fn services(self, edges: &[(&str, &[&str])]) -> Self {
        edges.iter().fold(self, |b, (name, deps)| {
            b.service(*name, deps.iter().copied())
        })
    }

    /// Default steps as `(weight, bake)`.
    pub fn steps(mut self, steps: impl IntoIterator<Item = (i32, Duration)>) -> Self {
        self.defaults().steps = Some(
            steps
                .into_iter()
                .map(|(weight, bake)| Step {
                    weight,
                    bake: bake.into(),
                    approval: None,
                })
                .collect(),
        );
        self
    }

    /// Measure every `interval` during a bake.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.analysis().interval = Some(interval.into());
        self
    }

    pub fn failure_limit(mut self, limit: i32) -> Self {
        self.analysis().failure_limit = Some(limit);
        self
    }

    /// A default metric that passes at or below `max`.
    pub fn metric_at_most(mut self, name: &str, query: &str, max: f64) -> Self {
        self.analysis().metrics.push(Metric {
            name: name.into(),
            query: query.into(),
            min: None,
            max: Some(max),
            compare: None,
        });
        self
    }

    /// A default metric that holds the canary to the stable pods by `compare`.
    pub fn metric_compared(mut self, name: &str, query: &str, compare: Compare) -> Self {
        self.analysis().metrics.push(Metric {
            name: name.into(),
            query: query.into(),
            min: None,
            max: None,
            compare: Some(compare),
        });
        self
    }

    /// Verification: the promoted train watched for `bake`, measured every
    /// `interval` by a metric that passes at or below `max`.
    pub fn verify(
        mut self,
        bake: Duration,
        interval: Duration,
        name: &str,
        query: &str,
        max: f64,
    ) -> Self {
        self.0.verify = Some(Verify {
            bake: bake.into(),
            analysis: Analysis {
                interval: Some(interval.into()),
                metrics: vec![Metric {
                    name: name.into(),
                    query: query.into(),
                    min: None,
                    max: Some(max),
                    compare: None,
                }],
                ..Default::default()
            },
        });
        self
    }

    pub fn build(self) -> ReleaseSpec {
        self.0
    }

    fn defaults(&mut self) -> &mut Defaults {
        self.0.defaults.get_or_insert_with(Defaults::default)
    }

    fn analysis(&mut self) -> &mut Analysis {
        self.defaults()
            .analysis
            .get_or_insert_with(Analysis::default)
    }
}

/// A Job template running `migrate <arg>` once.
pub fn job_template(arg: &str) -> JobTemplateSpec {
    serde_json::from_value(serde_json::json!({
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "migrate", "image": "migrate:v2", "args": [arg]}]
        }}}
    }))
    .expect("a valid Job template")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_spec_is_valid_and_plans() {
        let s = spec()
            .services(&[("a", &[]), ("b", &["a"])])
            .steps([
                (10, Duration::from_secs(60)),
                (100, Duration::from_secs(60)),
            ])
            .interval(Duration::from_secs(20))
            .metric_at_most("error-rate", "q", 0.01)
            .build();
        assert_eq!(crate::api::validate(&s), vec![]);
        assert_eq!(crate::plan::plan(&s).unwrap().waves.len(), 2);
        assert_eq!(s.services[1].depends_on, vec!["a"]);
        assert_eq!(s.services[1].change.images["main"], "b:v2");
    }
}
