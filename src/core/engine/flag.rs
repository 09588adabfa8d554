//! A flag: its keys' values before the release are recorded, then the keys
//! are set and the flag bakes with its analysis like one step of a canary. On
//! a rollback it is put back first: turning a feature off is the fastest
//! mitigation there is.

use super::context::{Ctx, plus};
use super::{Action, CONVERGE, NoticeKind};
use crate::api::{FlagBaseline, FlagChange, ServicePhase};
use crate::text;

fn flag_of<'a>(cx: &Ctx<'a>, name: &str) -> Option<&'a FlagChange> {
    cx.spec.service(name)?.flag.as_ref()
}

fn config_map(flag: &FlagChange) -> &str {
    flag.config_map.as_deref().unwrap_or_default()
}

fn keys(flag: &FlagChange) -> String {
    flag.keys
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every key of the flag has its new value in the ConfigMap.
fn is_set(cx: &Ctx, name: &str, flag: &FlagChange) -> bool {
    cx.seen(name)
        .flag
        .as_ref()
        .is_some_and(|f| flag.keys.iter().all(|(k, v)| f.values.get(k) == Some(v)))
}

/// Every key of the flag is as its baseline recorded it (absent keys absent).
/// `None` when the ConfigMap is gone.
fn at_baseline(cx: &Ctx, i: usize, flag: &FlagChange) -> Option<bool> {
    let seen = cx.seen(&cx.st.services[i].name).flag.as_ref()?;
    let Some(baseline) = &cx.st.services[i].flag_baseline else {
        // Nothing recorded: the keys were never written.
        return Some(true);
    };
    Some(
        flag.keys
            .keys()
            .all(|k| seen.values.get(k) == baseline.values.get(k)),
    )
}

/// Its turn came: record the keys' values as they are, before anything is written.
pub(super) fn start(cx: &mut Ctx, i: usize) {
    let name = cx.st.services[i].name.clone();
    let Some(flag) = flag_of(cx, &name) else {
        return;
    };
    // A missing ConfigMap is drift (a hold) once the release has started.
    let Some(seen) = cx.seen(&name).flag.clone() else {
        return;
    };
    let mut baseline = FlagBaseline::default();
    for k in flag.keys.keys() {
        match seen.values.get(k) {
            Some(v) => {
                baseline.values.insert(k.clone(), v.clone());
            }
            None => baseline.absent.push(k.clone()),
        }
    }
    let was = if baseline.values.is_empty() {
        "none of its keys existed".to_owned()
    } else {
        let set: Vec<String> = baseline
            .values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("it had {}", set.join(", "))
    };
    let now = cx.time();
    let s = &mut cx.st.services[i];
    s.phase = ServicePhase::Progressing;
    s.since = Some(now);
    s.step = Some(0);
    s.weight = 0;
    s.bake_started_at = None;
    s.tally.clear();
    s.flag_baseline = Some(baseline);
    s.message = Some(format!(
        "baseline of ConfigMap {} recorded; setting its keys",
        config_map(flag)
    ));
    cx.record(
        "ServiceStarted",
        Some(&name),
        format!(
            "flag baseline of ConfigMap {} recorded ({was}); sets {} next",
            config_map(flag),
            keys(flag)
        ),
    );
    cx.wake_in(std::time::Duration::ZERO);
}

/// The keys set, the flag bakes with its analysis; passed, it is promoted.
pub(super) fn bake(cx: &mut Ctx, i: usize) {
    let name = cx.st.services[i].name.clone();
    let Some(svc) = cx.spec.service(&name) else {
        return;
    };
    let Some(flag) = svc.flag.as_ref() else {
        return;
    };
    if cx.st.services[i].flag_baseline.is_none() {
        return start(cx, i);
    }
    if cx.seen(&name).flag.is_none() {
        // Drift: the hold names the ConfigMap.
        return;
    }
    let bake_time = flag.bake();
    let Some(started) = cx.st.services[i].bake_started_at.clone() else {
        if !is_set(cx, &name, flag) {
            cx.st.services[i].weight = 0;
            cx.st.services[i].message = Some(format!(
                "waits for {} to be set in ConfigMap {}",
                keys(flag),
                config_map(flag)
            ));
            cx.act(Action::SetFlag { service: name });
            cx.wake_in(CONVERGE);
            return;
        }
        let now = cx.time();
        let s = &mut cx.st.services[i];
        s.bake_started_at = Some(now);
        s.weight = 100;
        s.step = Some(0);
        s.tally.clear();
        cx.record(
            "FlagSet",
            Some(&name),
            format!(
                "{} set in ConfigMap {}; baking for {}",
                keys(flag),
                config_map(flag),
                text::duration(bake_time)
            ),
        );
        return bake(cx, i);
    };
    let bake_end = plus(started.0, bake_time);
    // A flag is all the traffic's at once: like a step at 100 %, nothing to compare with.
    let analysis = crate::analysis::measured_at(&cx.spec.analysis_of(svc), 100);
    let tally = cx.st.services[i].tally.clone();
    let short = super::progress::short_of_passes(&analysis, &tally, bake_time);
    if cx.now >= bake_end && short.is_empty() {
        let now = cx.time();
        let s = &mut cx.st.services[i];
        s.phase = ServicePhase::Promoted;
        s.since = Some(now);
        s.bake_started_at = None;
        s.tally.clear();
        s.weight = 0;
        s.message = Some(format!(
            "on: {} set in ConfigMap {}",
            keys(flag),
            config_map(flag)
        ));
        let message = format!("{name} promoted: the flag is set and passed its bake");
        cx.record("Promoted", Some(&name), message.clone());
        cx.notice(NoticeKind::Promoted, Some(&name), message);
        return;
    }
    if cx.now < bake_end {
        cx.wake_at(bake_end);
    }
    super::progress::wake_for_measurements(cx, &analysis, &tally, &started);
    let evidence = if short.is_empty() {
        String::new()
    } else {
        format!("; passing measurements {}", short.join(", "))
    };
    cx.st.services[i].message = Some(format!("flag set: baking until {bake_end}{evidence}"));
}

/// Held: the flag is turned off (its baseline back) so nobody runs a feature
/// that cannot be judged; on resume it is set again and bakes from the start.
/// True when an action was needed.
pub(super) fn off(cx: &mut Ctx, i: usize) -> bool {
    let name = cx.st.services[i].name.clone();
    let Some(flag) = flag_of(cx, &name) else {
        return false;
    };
    if at_baseline(cx, i, flag) == Some(false) {
        cx.act(Action::RestoreFlag { service: name });
        return true;
    }
    false
}

/// Put the keys back as the baseline recorded them.
pub(super) fn restore(cx: &mut Ctx, i: usize) {
    let name = cx.st.services[i].name.clone();
    let Some(flag) = flag_of(cx, &name) else {
        return;
    };
    match at_baseline(cx, i, flag) {
        None => cx.fail(
            Some(&name),
            format!(
                "{name}: ConfigMap {} is gone, so the flag's keys cannot be put back; recreate it with \
                 the values in status.services[].flagBaseline by hand",
                config_map(flag)
            ),
        ),
        Some(true) => {
            let now = cx.time();
            let s = &mut cx.st.services[i];
            s.phase = ServicePhase::Restored;
            s.since = Some(now);
            s.weight = 0;
            s.message = Some(format!("off: ConfigMap {} back on its baseline", config_map(flag)));
            let message = format!(
                "{name} restored: the keys of ConfigMap {} are back to their baseline",
                config_map(flag)
            );
            cx.record("FlagRestored", Some(&name), message.clone());
            cx.notice(NoticeKind::Restored, Some(&name), message);
        }
        Some(false) => {
            cx.st.services[i].message = Some(format!(
                "waits for the keys of ConfigMap {} to be put back",
                config_map(flag)
            ));
            cx.act(Action::RestoreFlag { service: name });
            cx.wake_in(CONVERGE);
        }
    }
}

/// The flag's ConfigMap is gone while the release is in flight.
pub(super) fn drift(cx: &Ctx, i: usize, at: usize) -> Option<String> {
    let s = &cx.st.services[i];
    let flag = flag_of(cx, &s.name)?;
    if cx.seen(&s.name).flag.is_some() {
        return None;
    }
    Some(format!(
        "ConfigMap {:?} (spec.services[{at}].flag.configMap) was deleted while the release is in flight; \
         recreate it",
        config_map(flag)
    ))
}
