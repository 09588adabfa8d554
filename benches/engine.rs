//! How fast the pure core is: planning a 1,000-service random DAG (target
//! under 10 ms) and one engine decision for a 20-service release (target
//! under 100 µs). Figures go to docs/performance.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use signalman::api::{ReleaseSpec, ServicePhase};
use signalman::engine::decide;
use signalman::engine::sim::Sim;
use signalman::plan::plan;
use signalman_core::testing;

/// xorshift64*, so the graph is the same on every run without a rand dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Four steps of 60 s, two metrics measured every 10 s; service `name` depends on its list.
fn release(services: impl IntoIterator<Item = (String, Vec<String>)>) -> ReleaseSpec {
    let base = testing::spec()
        .steps([5, 25, 50, 100].map(|weight| (weight, Duration::from_secs(60))))
        .interval(Duration::from_secs(10))
        .metric_at_most("error-rate", "q", 1.0)
        .metric_at_most("latency-p99", "q", 1.0);
    services
        .into_iter()
        .fold(base, |b, (name, deps)| b.service(name, deps))
        .build()
}

/// 1,000 services, each depending on up to 3 random earlier ones.
fn random_dag(n: usize) -> ReleaseSpec {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let services = (0..n)
        .map(|i| {
            let deps = if i == 0 {
                Vec::new()
            } else {
                let k = rng.below(4);
                let mut d: Vec<String> = (0..k)
                    .map(|_| format!("svc-{}", rng.below(i as u64)))
                    .collect();
                d.sort();
                d.dedup();
                d
            };
            (format!("svc-{i}"), deps)
        })
        .collect::<Vec<_>>();
    release(services)
}

fn bench(c: &mut Criterion) {
    let dag = random_dag(1000);
    let p = plan(&dag).expect("acyclic");
    println!("random DAG: 1000 services, {} waves", p.waves.len());
    c.bench_function("plan 1000-service random DAG", |b| {
        b.iter(|| plan(black_box(&dag)))
    });

    // 20 services in 5 waves of 4, each depending on the whole wave before.
    let services = (0..20)
        .map(|i| {
            let wave = i / 4;
            let deps = if wave == 0 {
                Vec::new()
            } else {
                (0..4)
                    .map(|j| format!("svc-{}", (wave - 1) * 4 + j))
                    .collect()
            };
            (format!("svc-{i}"), deps)
        })
        .collect::<Vec<_>>();
    let mut sim = Sim::new(release(services));
    // Run until wave 2 bakes and the decision has measurements to count: the busiest kind of decision.
    sim.run_until(10_000, |s| {
        let st = s.release.status.as_ref();
        let baking = st.is_some_and(|st| {
            st.services
                .iter()
                .filter(|x| x.phase == ServicePhase::Progressing && x.bake_started_at.is_some())
                .count()
                >= 4
                && st
                    .services
                    .iter()
                    .any(|x| x.phase == ServicePhase::Promoted)
        });
        baking
            && s.passes
                .last()
                .is_some_and(|p| !p.observations.measurements.is_empty())
    });
    let pass = sim.passes.last().expect("ran").clone();
    println!(
        "20-service decision: {} measurements in, {} actions out",
        pass.observations.measurements.len(),
        pass.decision.actions.len()
    );
    c.bench_function("decide 20-service release", |b| {
        b.iter(|| {
            decide(
                black_box(&pass.before),
                black_box(&pass.observations),
                black_box(pass.now),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
