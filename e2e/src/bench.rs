//! The scale benchmark (`make bench-scale`, `e2e/bench/scale.sh`): the shape
//! of its Releases and the figures it reports, computed from what each
//! Release recorded in its status and from the API server's and Prometheus'
//! own counters. Everything here is pure, so the arithmetic is unit-tested;
//! the binary `bench-scale` does the I/O.
//!
//! Every train is the same five services: a diamond `a -> {b, c} -> d` plus an
//! independent `e`, so three waves (`a e`, `b c`, `d`), each service walking
//! the steps 20 % and 100 % with one bake each. The ideal train takes
//! `waves x steps x bake`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use signalman::api::{Outcome, Phase, Release, ReleaseStatus};

use crate::release::{release, svc};

/// The five services of one train, by their suffix, with their dependencies.
pub const SERVICES: [(&str, &[&str]); 5] = [
    ("a", &[]),
    ("b", &["a"]),
    ("c", &["a"]),
    ("d", &["b", "c"]),
    ("e", &[]),
];
/// Waves of the plan of [`SERVICES`].
pub const WAVES: u32 = 3;
/// Step weights of every service.
pub const WEIGHTS: [i32; 2] = [20, 100];

/// What every train of one run looks like.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    pub bake: Duration,
    pub interval: Duration,
}

impl Shape {
    /// A train that never waits for anything but its bakes.
    pub fn ideal(&self) -> Duration {
        self.bake * WAVES * WEIGHTS.len() as u32
    }

    /// Passing measurements a step needs (the engine's default `minPasses`).
    pub fn passes_needed(&self) -> usize {
        (self.bake.as_millis() / self.interval.as_millis().max(1)).max(1) as usize
    }
}

/// The Deployment (and Service) names of train `i`: `r0007-a` ... `r0007-e`.
pub fn service_names(i: usize) -> Vec<String> {
    SERVICES
        .iter()
        .map(|(s, _)| format!("r{i:04}-{s}"))
        .collect()
}

/// Release `train-<i>`: the five services of [`SERVICES`] by replica ratio,
/// steps [`WEIGHTS`] baking `shape.bake` each, one error-rate metric against
/// the traffic simulator measured every `shape.interval`.
pub fn train(i: usize, shape: &Shape) -> Release {
    let bake = shape.bake.as_secs();
    let steps: Vec<(i32, u64)> = WEIGHTS.iter().map(|w| (*w, bake)).collect();
    let mut b = release(&format!("train-{i:04}")).defaults(&steps);
    for (s, deps) in SERVICES {
        let deps: Vec<String> = deps.iter().map(|d| format!("r{i:04}-{d}")).collect();
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        b = b.service(svc(&format!("r{i:04}-{s}")).after(&deps));
    }
    let mut r = b.build();
    let analysis = r
        .spec
        .defaults
        .as_mut()
        .and_then(|d| d.analysis.as_mut())
        .expect("defaults() sets the analysis");
    analysis.interval = Some(shape.interval.into());
    // A Prometheus busy with thousands of series may time out now and then;
    // a few errors are tolerated so that the figures are about the operator.
    analysis.error_limit = Some(3);
    r
}

// ------------------------------------------------------------ steps

/// One step of one service, as its Release recorded it. Times have the
/// status' resolution: whole seconds, truncated.
#[derive(Clone, Debug, PartialEq)]
pub struct StepTiming {
    pub release: String,
    pub service: String,
    /// 1-based.
    pub step: usize,
    pub of: usize,
    /// When the step's weight was in effect (`StepStarted`).
    pub started: Timestamp,
    /// When the bake had lasted long enough and the last passing measurement
    /// it needed was in: the earliest moment the step could pass.
    /// `None` while it is not complete.
    pub complete: Option<Timestamp>,
    /// `StepPassed`.
    pub passed: Option<Timestamp>,
    /// The next step's `StepStarted` (none after the last step).
    pub next_in_effect: Option<Timestamp>,
}

/// `(step, of)` from a timeline message that says `step 2/3` (`StepStarted`:
/// "step 2/3: ...", `StepPassed`: "<service>: step 2/3 at 50% passed").
pub fn step_of_message(message: &str) -> Option<(usize, usize)> {
    message.match_indices("step ").find_map(|(i, _)| {
        let rest = &message[i + "step ".len()..];
        let (k, rest) = rest.split_once('/')?;
        let of: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some((k.parse().ok()?, of.parse().ok()?))
    })
}

/// Every step a Release started, with what it needed to pass and when it did.
pub fn step_timings(name: &str, status: &ReleaseStatus, shape: &Shape) -> Vec<StepTiming> {
    let mut out: Vec<StepTiming> = Vec::new();
    for e in &status.timeline {
        let Some(service) = e.service.as_deref() else {
            continue;
        };
        let Some((step, of)) = step_of_message(&e.message) else {
            continue;
        };
        let at = e.at.0;
        match e.reason.as_str() {
            "StepStarted" => {
                // A step started again (after a restart or a hold) replaces
                // the earlier start: its bake began anew.
                out.retain(|t| !(t.service == service && t.step == step));
                if let Some(prev) = out
                    .iter_mut()
                    .find(|t| t.service == service && t.step + 1 == step)
                {
                    prev.next_in_effect = Some(at);
                }
                out.push(StepTiming {
                    release: name.to_string(),
                    service: service.to_string(),
                    step,
                    of,
                    started: at,
                    complete: None,
                    passed: None,
                    next_in_effect: None,
                });
            }
            "StepPassed" => {
                if let Some(t) = out
                    .iter_mut()
                    .find(|t| t.service == service && t.step == step)
                {
                    t.passed = Some(at);
                }
            }
            _ => {}
        }
    }
    let bake = k8s_openapi::jiff::SignedDuration::try_from(shape.bake).unwrap_or_default();
    for t in &mut out {
        let Some(st) = status.services.iter().find(|s| s.name == t.service) else {
            continue;
        };
        let bake_end = t.started + bake;
        let upto = t.passed.unwrap_or(Timestamp::MAX);
        let passes: Vec<Timestamp> = st
            .measurements
            .iter()
            .filter(|m| m.step as usize + 1 == t.step && m.outcome == Outcome::Pass)
            .map(|m| m.at.0)
            .filter(|at| *at >= t.started && *at <= upto)
            .collect();
        // The last pass before the step passed is the one that completed its
        // evidence (later ones exist only while the bake still ran). Only the
        // most recent measurements are kept, but a step's own are the newest
        // but for the next step's few.
        let enough = t.passed.is_some() || passes.len() >= shape.passes_needed();
        t.complete = match passes.iter().max() {
            Some(last) if enough => Some((*last).max(bake_end)),
            _ if t.passed.is_some() => Some(bake_end),
            _ => None,
        };
    }
    out
}

/// Seconds from `from` to `to`, never negative (both have whole-second
/// resolution, so a difference of -1 s is a tie).
pub fn secs(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64().max(0.0)
}

/// Measurement lateness: how long after it was due each measurement of a
/// step was taken (due one interval after the step's start, then one after
/// the metric's previous measurement in the step); a step still gathering
/// evidence at `end` adds how long its next measurement is overdue by then.
/// A controller that falls behind takes its measurements late, which delays
/// the moment a step is complete: this shows it where the step lateness
/// cannot.
pub fn measurement_lateness(
    status: &ReleaseStatus,
    steps: &[StepTiming],
    shape: &Shape,
    end: Timestamp,
) -> Vec<f64> {
    let interval = k8s_openapi::jiff::SignedDuration::try_from(shape.interval).unwrap_or_default();
    let mut out = Vec::new();
    for t in steps {
        let Some(st) = status.services.iter().find(|s| s.name == t.service) else {
            continue;
        };
        let upto = t.passed.unwrap_or(Timestamp::MAX);
        let mut by_metric: BTreeMap<&str, Vec<Timestamp>> = BTreeMap::new();
        for m in st
            .measurements
            .iter()
            .filter(|m| m.step as usize + 1 == t.step)
        {
            if m.at.0 >= t.started && m.at.0 <= upto {
                by_metric.entry(m.metric.as_str()).or_default().push(m.at.0);
            }
        }
        let gathering = t.passed.is_none() && t.complete.is_none();
        if by_metric.is_empty() && gathering {
            out.push(secs(t.started + interval, end));
        }
        for ats in by_metric.values_mut() {
            ats.sort();
            let mut prev = t.started;
            for at in ats.iter() {
                out.push(secs(prev + interval, *at));
                prev = *at;
            }
            if gathering && end > prev + interval {
                out.push(secs(prev + interval, end));
            }
        }
    }
    out
}

/// Step lateness: from a step's completion (bake and evidence) to the next
/// step's weight in effect; for a step complete but not followed by `end`,
/// how long it has waited by then.
pub fn step_lateness(steps: &[StepTiming], end: Timestamp) -> Vec<f64> {
    steps
        .iter()
        .filter(|t| t.step < t.of)
        .filter_map(|t| Some(secs(t.complete?, t.next_in_effect.unwrap_or(end))))
        .collect()
}

/// Decision lateness: from a step's completion to the reconcile that passed it
/// (the operator alone, without the cluster's time to start pods).
pub fn decision_lateness(steps: &[StepTiming], end: Timestamp) -> Vec<f64> {
    steps
        .iter()
        .filter_map(|t| Some(secs(t.complete?, t.passed.unwrap_or(end))))
        .collect()
}

/// Hand-over lateness: from the moment every dependency of a service was
/// promoted to the moment its first weight was in effect (or `end`).
pub fn handover_lateness(status: &ReleaseStatus, train: usize, end: Timestamp) -> Vec<f64> {
    let mut promoted: HashMap<&str, Timestamp> = HashMap::new();
    let mut first_step: HashMap<&str, Timestamp> = HashMap::new();
    for e in &status.timeline {
        let Some(s) = e.service.as_deref() else {
            continue;
        };
        match e.reason.as_str() {
            "Promoted" => {
                promoted.entry(s).or_insert(e.at.0);
            }
            "StepStarted" => {
                first_step.entry(s).or_insert(e.at.0);
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (s, deps) in SERVICES.iter().filter(|(_, d)| !d.is_empty()) {
        let deps: Option<Vec<Timestamp>> = deps
            .iter()
            .map(|d| promoted.get(format!("r{train:04}-{d}").as_str()).copied())
            .collect();
        let Some(ready) = deps.and_then(|d| d.into_iter().max()) else {
            continue;
        };
        let name = format!("r{train:04}-{s}");
        let started = first_step.get(name.as_str()).copied().unwrap_or(end);
        out.push(secs(ready, started));
    }
    out
}

/// Steps started again or out of order: per service, each `StepStarted` and
/// `StepPassed` must name steps 1, 2, ... once each, in order, and
/// `Promoted` come at most once, after the last step passed.
pub fn sequence_faults(name: &str, status: &ReleaseStatus) -> Vec<String> {
    let mut started: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut passed: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut promoted: BTreeMap<&str, usize> = BTreeMap::new();
    let mut of: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &status.timeline {
        let Some(s) = e.service.as_deref() else {
            continue;
        };
        let step = step_of_message(&e.message);
        match (e.reason.as_str(), step) {
            ("StepStarted", Some((k, n))) => {
                started.entry(s).or_default().push(k);
                of.insert(s, n);
            }
            ("StepPassed", Some((k, _))) => passed.entry(s).or_default().push(k),
            ("Promoted", _) => *promoted.entry(s).or_default() += 1,
            _ => {}
        }
    }
    let mut faults = Vec::new();
    for (what, seen) in [("started", &started), ("passed", &passed)] {
        for (s, steps) in seen {
            let want: Vec<usize> = (1..=steps.len()).collect();
            if *steps != want {
                faults.push(format!("{name}/{s}: steps {what} {steps:?}, want {want:?}"));
            }
        }
    }
    for (s, n) in &promoted {
        if *n > 1 {
            faults.push(format!("{name}/{s}: promoted {n} times"));
        }
        let last = passed.get(s).and_then(|p| p.last()).copied();
        if last != of.get(s).copied() {
            faults.push(format!(
                "{name}/{s}: promoted after step {last:?} of {:?}",
                of.get(s)
            ));
        }
    }
    faults
}

// ------------------------------------------------------------ trains

/// Where the trains of one run stand.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trains {
    pub total: usize,
    /// Seconds from `startedAt` to `finishedAt` of each Succeeded train.
    pub succeeded: Vec<f64>,
    /// Count by phase of those not Succeeded (`"none"`: no status yet).
    pub others: BTreeMap<String, usize>,
    /// Count by `currentWave` of those still in flight.
    pub waves: BTreeMap<String, usize>,
}

impl Trains {
    pub fn of<'a>(releases: impl IntoIterator<Item = &'a Release>) -> Trains {
        let mut t = Trains::default();
        for r in releases {
            t.total += 1;
            let st = r.status.as_ref();
            let phase = st.and_then(|s| s.phase);
            match (phase, st) {
                (Some(Phase::Succeeded), Some(s)) => {
                    if let (Some(a), Some(b)) = (&s.started_at, &s.finished_at) {
                        t.succeeded.push(secs(a.0, b.0));
                    }
                }
                _ => {
                    let p = phase.map_or("none".to_string(), |p| format!("{p:?}"));
                    *t.others.entry(p).or_default() += 1;
                    if phase.is_some_and(|p| !p.is_final()) {
                        let w = st
                            .and_then(|s| s.current_wave.clone())
                            .unwrap_or_else(|| "-".into());
                        *t.waves.entry(w).or_default() += 1;
                    }
                }
            }
        }
        t
    }

    /// Trains not in a final phase.
    pub fn in_flight(&self) -> usize {
        self.total - self.succeeded.len() - self.others_final()
    }

    fn others_final(&self) -> usize {
        ["RolledBack", "Failed"]
            .iter()
            .filter_map(|p| self.others.get(*p))
            .sum()
    }
}

// ------------------------------------------------------------ numbers

/// Nearest-rank percentile `p` (0..=100) of `values`; `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// `p50 / p99 / max` in seconds, or `--` for nothing measured.
pub fn spread(values: &[f64]) -> String {
    match (
        percentile(values, 50.0),
        percentile(values, 99.0),
        percentile(values, 100.0),
    ) {
        (Some(a), Some(b), Some(c)) => format!("{a:.0} / {b:.0} / {c:.0} s"),
        _ => "--".to_string(),
    }
}

// ------------------------------------------------------------ counters

/// Requests the API server served, summed by `(VERB, resource[/subresource])`.
pub type Requests = BTreeMap<(String, String), f64>;

/// The labels and value of one sample line of a Prometheus text exposition.
pub fn parse_sample(line: &str) -> Option<(&str, BTreeMap<String, String>, f64)> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let Some((name, labels)) = head.split_once('{') else {
        return Some((head, BTreeMap::new(), value));
    };
    let labels = labels.strip_suffix('}')?;
    let mut out = BTreeMap::new();
    let mut rest = labels;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut val = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        val.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => val.push(c),
            }
        }
        out.insert(key.trim_start_matches(',').trim().to_string(), val);
        rest = &after[end..];
    }
    Some((name, out, value))
}

/// `apiserver_request_total` of the API server's `/metrics`, by verb and
/// resource (requests without a resource, such as `/metrics`, left out).
pub fn apiserver_requests(metrics: &str) -> Requests {
    let mut out = Requests::new();
    for (name, labels, value) in metrics.lines().filter_map(parse_sample) {
        if name != "apiserver_request_total" {
            continue;
        }
        let resource = labels.get("resource").cloned().unwrap_or_default();
        if resource.is_empty() {
            continue;
        }
        let resource = match labels.get("subresource").filter(|s| !s.is_empty()) {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource,
        };
        let verb = labels.get("verb").cloned().unwrap_or_default();
        *out.entry((verb, resource)).or_default() += value;
    }
    out
}

/// What was counted between two scrapes.
pub fn delta(before: &Requests, after: &Requests) -> Requests {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// The verbs that change something.
pub fn is_write(verb: &str) -> bool {
    matches!(
        verb,
        "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE" | "DELETECOLLECTION"
    )
}

/// Sum of the samples of `name` (with all its labels) whose labels include
/// every pair of `with`.
pub fn metric_sum(metrics: &str, name: &str, with: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter_map(parse_sample)
        .filter(|(n, labels, _)| {
            *n == name
                && with
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

// ------------------------------------------------------------ the process

/// Resident memory now and at its peak (`VmRSS`, `VmHWM` of
/// `/proc/<pid>/status`), in bytes.
pub fn rss(proc_status: &str) -> (u64, u64) {
    let kb = |key: &str| {
        proc_status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

/// User plus system CPU ticks of `/proc/<pid>/stat` (fields 14 and 15; the
/// command name in parentheses may hold spaces).
pub fn cpu_ticks(proc_stat: &str) -> u64 {
    let Some((_, rest)) = proc_stat.rsplit_once(')') else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    let get = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(14) + get(15)
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use signalman::api::{Measurement, ServicePhase, ServiceStatus, TimelineEntry};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn entry(at: i64, reason: &str, service: &str, message: &str) -> TimelineEntry {
        TimelineEntry {
            at: Time(t(at)),
            reason: reason.into(),
            service: Some(service.into()),
            message: message.into(),
        }
    }

    fn pass(step: i32, at: i64) -> Measurement {
        Measurement {
            stable_value: None,
            metric: "error-rate".into(),
            step,
            value: Some(0.0),
            outcome: Outcome::Pass,
            message: None,
            at: Time(t(at)),
        }
    }

    fn shape() -> Shape {
        Shape {
            bake: Duration::from_secs(20),
            interval: Duration::from_secs(5),
        }
    }

    fn service(name: &str, measurements: Vec<Measurement>) -> ServiceStatus {
        ServiceStatus {
            name: name.into(),
            phase: ServicePhase::Promoted,
            measurements,
            ..Default::default()
        }
    }

    /// Service `a`: step 1 starts at 0, its fourth pass comes late at 23, it
    /// passes at 25 and step 2 is in effect at 27; step 2 starts at 27, bakes
    /// until 47 with its last pass at 45, passes at 47.
    fn one_service() -> ReleaseStatus {
        ReleaseStatus {
            timeline: vec![
                entry(
                    0,
                    "StepStarted",
                    "a",
                    "step 1/2: 20% of traffic on the new version, baking for 20s",
                ),
                entry(25, "StepPassed", "a", "a: step 1/2 at 20% passed"),
                entry(
                    27,
                    "StepStarted",
                    "a",
                    "step 2/2: 100% of traffic on the new version, baking for 20s",
                ),
                entry(47, "StepPassed", "a", "a: step 2/2 at 100% passed"),
                entry(50, "Promoted", "a", "a promoted"),
            ],
            services: vec![service(
                "a",
                vec![
                    pass(0, 5),
                    pass(0, 10),
                    pass(0, 15),
                    pass(0, 23),
                    pass(1, 32),
                    pass(1, 37),
                    pass(1, 42),
                    pass(1, 45),
                ],
            )],
            ..Default::default()
        }
    }

    #[test]
    fn steps_are_read_from_the_messages() {
        assert_eq!(step_of_message("step 1/2: 20% of traffic"), Some((1, 2)));
        assert_eq!(
            step_of_message("r0001-a: step 2/2 at 100% passed"),
            Some((2, 2))
        );
        assert_eq!(step_of_message("a promoted"), None);
    }

    #[test]
    fn a_step_is_complete_at_its_last_pass_or_its_bake_end_whichever_is_later() {
        let steps = step_timings("r", &one_service(), &shape());
        assert_eq!(steps.len(), 2);
        // Late evidence: complete at the fourth pass (23), not at the bake end (20).
        assert_eq!(steps[0].complete, Some(t(23)));
        assert_eq!(steps[0].next_in_effect, Some(t(27)));
        // Evidence in before the bake ended: complete at the bake end.
        assert_eq!(steps[1].complete, Some(t(47)));
        assert_eq!(steps[1].next_in_effect, None);
        let end = t(100);
        assert_eq!(step_lateness(&steps, end), vec![4.0]);
        assert_eq!(decision_lateness(&steps, end), vec![2.0, 0.0]);
    }

    #[test]
    fn a_complete_step_not_yet_followed_counts_its_wait_so_far() {
        let mut st = one_service();
        st.timeline.truncate(1);
        let steps = step_timings("r", &st, &shape());
        assert_eq!(steps[0].complete, Some(t(23)));
        assert_eq!(step_lateness(&steps, t(53)), vec![30.0]);
        // Not complete yet (three passes): no lateness at all.
        st.services[0].measurements.truncate(3);
        let steps = step_timings("r", &st, &shape());
        assert_eq!(step_lateness(&steps, t(53)), Vec::<f64>::new());
    }

    #[test]
    fn a_repeated_or_skipped_step_is_a_fault() {
        assert!(sequence_faults("r", &one_service()).is_empty());
        let mut repeated = one_service();
        repeated.timeline.insert(
            2,
            entry(
                26,
                "StepStarted",
                "a",
                "step 1/2: 20% of traffic on the new version",
            ),
        );
        assert_eq!(sequence_faults("r", &repeated).len(), 1);
        let mut skipped = one_service();
        skipped.timeline.remove(0);
        assert!(!sequence_faults("r", &skipped).is_empty());
        let mut twice = one_service();
        twice
            .timeline
            .push(entry(51, "Promoted", "a", "a promoted"));
        assert_eq!(sequence_faults("r", &twice), vec!["r/a: promoted 2 times"]);
    }

    #[test]
    fn a_measurement_is_late_by_the_time_after_it_was_due() {
        let st = one_service();
        let steps = step_timings("r", &st, &shape());
        // Step 1: due 5, 10, 15, 20 -> taken 5, 10, 15, 23; step 2 (from 27):
        // due 32, 37, 42, 47 -> taken 32, 37, 42, 45 (early is 0).
        let late = measurement_lateness(&st, &steps, &shape(), t(100));
        assert_eq!(late, vec![0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0]);
        // Still gathering at 40 with three passes: the fourth, due at 20, is 20 s overdue.
        let mut gathering = one_service();
        gathering.timeline.truncate(1);
        gathering.services[0].measurements.truncate(3);
        let steps = step_timings("r", &gathering, &shape());
        let late = measurement_lateness(&gathering, &steps, &shape(), t(40));
        assert_eq!(late, vec![0.0, 0.0, 0.0, 20.0]);
    }

    #[test]
    fn handover_waits_for_every_dependency() {
        let st = ReleaseStatus {
            timeline: vec![
                entry(40, "Promoted", "r0001-a", "-"),
                entry(43, "StepStarted", "r0001-b", "step 1/2: -"),
                entry(45, "StepStarted", "r0001-c", "step 1/2: -"),
                entry(80, "Promoted", "r0001-b", "-"),
            ],
            ..Default::default()
        };
        // b 3 s, c 5 s; d waits for c too, which is not promoted: not counted.
        assert_eq!(handover_lateness(&st, 1, t(100)), vec![3.0, 5.0]);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn apiserver_requests_by_verb_and_resource() {
        let text = r#"# HELP apiserver_request_total Counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="",verb="GET",version="v1"} 7
apiserver_request_total{code="404",component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="",verb="GET",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",dry_run="",group="signalman.dev",resource="releases",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 3
apiserver_request_total{code="200",component="",dry_run="",group="",resource="",scope="",subresource="/metrics",verb="GET",version=""} 9
apiserver_request_duration_seconds_count{resource="deployments",verb="GET"} 100
"#;
        let r = apiserver_requests(text);
        assert_eq!(r.len(), 2);
        assert_eq!(r[&("GET".into(), "deployments".into())], 8.0);
        assert_eq!(r[&("PATCH".into(), "releases/status".into())], 3.0);
        let mut later = r.clone();
        *later
            .get_mut(&("GET".into(), "deployments".into()))
            .unwrap() += 5.0;
        let d = delta(&r, &later);
        assert_eq!(d.len(), 1);
        assert_eq!(d[&("GET".into(), "deployments".into())], 5.0);
    }

    #[test]
    fn metric_sums_filter_by_label() {
        let text = "prometheus_http_requests_total{code=\"200\",handler=\"/api/v1/query\"} 10\n\
                    prometheus_http_requests_total{code=\"400\",handler=\"/api/v1/query\"} 2\n\
                    prometheus_http_requests_total{code=\"200\",handler=\"/metrics\"} 5\n";
        let q = metric_sum(
            text,
            "prometheus_http_requests_total",
            &[("handler", "/api/v1/query")],
        );
        assert_eq!(q, 12.0);
    }

    #[test]
    fn process_figures_from_proc() {
        let status = "Name:\tsignalman\nVmHWM:\t  20480 kB\nVmRSS:\t  10240 kB\n";
        assert_eq!(rss(status), (10 * 1024 * 1024, 20 * 1024 * 1024));
        let stat = "1234 (signal man) S 1 2 3 4 5 6 7 8 9 10 150 50 0 0 20 0";
        assert_eq!(cpu_ticks(stat), 200);
    }

    #[test]
    fn ideal_train_and_needed_passes() {
        assert_eq!(shape().ideal(), Duration::from_secs(120));
        assert_eq!(shape().passes_needed(), 4);
        let r = train(7, &shape());
        assert_eq!(r.spec.services.len(), 5);
        assert_eq!(r.spec.services[3].depends_on, vec!["r0007-b", "r0007-c"]);
        let problems = signalman::api::validate(&r.spec);
        assert!(problems.is_empty(), "{problems:?}");
    }
}
