//! Release windows and freezes on a time line: is one open at an instant,
//! when does it next open, and how to say so. Read in the window's IANA time
//! zone, so 09:00 stays 09:00 local time across daylight saving changes.
//!
//! Every rule compares local wall-clock times: on the day clocks go forward
//! a window from 02:30 (a time that does not exist) opens at the first
//! instant after the gap; on the day they go back, an hour that happens twice
//! is inside the window both times.

use jiff::civil::{Date, DateTime, Time, Weekday as Day};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};

use crate::api::{Freeze, Problem, Weekday, Window};

/// Where an instant stands against a window and a freeze.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowCheck {
    /// Inside the window and in no freeze.
    pub open: bool,
    /// The freeze that applies now, in words (e.g. `Friday after 12:00`,
    /// `2026-12-24: year-end freeze`, `weekend`), if one does.
    pub frozen: Option<String>,
    /// The next instant the window is open and no freeze applies (none within a year: `None`).
    /// `None` as well while it is open.
    pub next_opening: Option<Timestamp>,
    /// `next_opening` in words, in the window's time zone, e.g. `Mon 09:00 Europe/Berlin`
    /// (with the date when it is a week or more away).
    pub opens: Option<String>,
    /// The window and freeze in words, e.g. `Mon-Thu 09:00-17:00 Europe/Berlin; Friday after 12:00 needs an override`.
    pub describe: String,
}

/// Look this far ahead for the next opening; a window that never opens within it is reported as such.
const HORIZON_DAYS: i32 = 366;
const DAY_SECONDS: i32 = 86_400;

/// Check `at` against `window` (none: always open) and `freeze` (none: never frozen).
/// An unknown time zone or an unreadable time is a [`Problem`] naming the field (`field` is
/// the window's path, e.g. `spec.window`).
pub fn check(
    window: Option<&Window>,
    freeze: Option<&Freeze>,
    field: &str,
    at: Timestamp,
) -> Result<WindowCheck, Problem> {
    let rules = Rules::new(window, freeze, field, "spec.freeze")?;
    let local = at.to_zoned(rules.tz.clone()).datetime();
    let frozen = rules.frozen(local);
    let open = rules.in_window(local) && frozen.is_none();
    let next_opening = if open { None } else { rules.next_opening(at) };
    Ok(WindowCheck {
        open,
        frozen,
        next_opening,
        opens: next_opening.map(|t| rules.words(at, t)),
        describe: rules.describe(),
    })
}

/// The window and freeze `spec` is held to under `policy`, checked at `at`: its own
/// `spec.window`, else the policy's, and the policy's freeze. `Ok(None)`: neither
/// exists, so it may go at any time. The controller and `plan` both ask here.
pub fn for_release(
    spec: &crate::api::ReleaseSpec,
    policy: &crate::engine::PolicyObservation,
    at: Timestamp,
) -> Result<Option<WindowCheck>, Problem> {
    let found = match policy {
        crate::engine::PolicyObservation::Found { name, spec } => Some((name.as_str(), spec)),
        _ => None,
    };
    let own = spec.window.as_ref();
    let window = own.or(found.and_then(|(_, p)| p.window.as_ref()));
    let freeze = found.and_then(|(_, p)| p.freeze.as_ref());
    if window.is_none() && freeze.is_none() {
        return Ok(None);
    }
    let field = match (own, found) {
        (None, Some((name, _))) => format!("ReleasePolicy {name}: spec.window"),
        _ => "spec.window".to_owned(),
    };
    check(window, freeze, &field, at).map(Some)
}

/// Every problem with a window (at `field`) and a freeze (at `freeze_field`): an unknown
/// time zone, a time that is not `HH:MM`, `from` not before `to`, a blackout that is no date.
pub fn problems(
    window: Option<&Window>,
    freeze: Option<&Freeze>,
    field: &str,
    freeze_field: &str,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut problem = |field: String, message: String| out.push(Problem { field, message });
    if let Some(w) = window {
        if let Some(tz) = &w.time_zone
            && TimeZone::get(tz).is_err()
        {
            problem(
                format!("{field}.timeZone"),
                format!(
                    "unknown time zone {tz:?}; use an IANA time zone such as Europe/Berlin or UTC"
                ),
            );
        }
        let from = clock(&w.from, false);
        let to = clock(&w.to, true);
        if from.is_none() {
            problem(
                format!("{field}.from"),
                format!(
                    "{:?} is not a time: write HH:MM on a 24-hour clock, e.g. 09:00",
                    w.from
                ),
            );
        }
        if to.is_none() {
            problem(
                format!("{field}.to"),
                format!(
                    "{:?} is not a time: write HH:MM on a 24-hour clock (or 24:00), e.g. 17:00",
                    w.to
                ),
            );
        }
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            problem(
                field.to_owned(),
                "from must be before to (a window cannot cross midnight; use from 00:00 or to 24:00 and \
                 list both days)"
                    .to_owned(),
            );
        }
        if w.days.is_empty() {
            problem(
                format!("{field}.days"),
                "list at least one day, e.g. [Monday, Tuesday]".to_owned(),
            );
        }
        for (i, d) in w.days.iter().enumerate() {
            if w.days[..i].contains(d) {
                problem(format!("{field}.days"), "list each day once".to_owned());
                break;
            }
        }
    }
    if let Some(f) = freeze {
        if let Some(ff) = &f.friday_from
            && clock(ff, false).is_none()
        {
            problem(
                format!("{freeze_field}.fridayFrom"),
                format!("{ff:?} is not a time: write HH:MM on a 24-hour clock, e.g. 12:00"),
            );
        }
        for (i, b) in f.blackouts.iter().enumerate() {
            if date(&b.date).is_none() {
                problem(
                    format!("{freeze_field}.blackouts[{i}].date"),
                    format!(
                        "{:?} is not a date: write YYYY-MM-DD, e.g. 2026-12-24",
                        b.date
                    ),
                );
            }
        }
    }
    out
}

/// Seconds since midnight of `HH:MM` (`24:00` only where `end_of_day`).
fn clock(text: &str, end_of_day: bool) -> Option<i32> {
    if end_of_day && text == "24:00" {
        return Some(DAY_SECONDS);
    }
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some(h * 3600 + m * 60)
}

fn date(text: &str) -> Option<Date> {
    (text.len() == 10).then(|| text.parse().ok()).flatten()
}

fn day(d: Weekday) -> Day {
    match d {
        Weekday::Monday => Day::Monday,
        Weekday::Tuesday => Day::Tuesday,
        Weekday::Wednesday => Day::Wednesday,
        Weekday::Thursday => Day::Thursday,
        Weekday::Friday => Day::Friday,
        Weekday::Saturday => Day::Saturday,
        Weekday::Sunday => Day::Sunday,
    }
}

fn short(d: Day) -> &'static str {
    match d {
        Day::Monday => "Mon",
        Day::Tuesday => "Tue",
        Day::Wednesday => "Wed",
        Day::Thursday => "Thu",
        Day::Friday => "Fri",
        Day::Saturday => "Sat",
        Day::Sunday => "Sun",
    }
}

fn hhmm(seconds: i32) -> String {
    format!("{:02}:{:02}", seconds / 3600, (seconds % 3600) / 60)
}

fn seconds_of(t: Time) -> i32 {
    i32::from(t.hour()) * 3600 + i32::from(t.minute()) * 60 + i32::from(t.second())
}

/// A window and freeze, parsed once.
struct Rules {
    tz: TimeZone,
    tz_name: String,
    /// The days and hours (seconds since midnight, `to` exclusive); none: always.
    window: Option<(Vec<Day>, i32, i32)>,
    friday_from: Option<i32>,
    weekends: bool,
    blackouts: Vec<(Date, Option<String>)>,
}

impl Rules {
    fn new(
        window: Option<&Window>,
        freeze: Option<&Freeze>,
        field: &str,
        freeze_field: &str,
    ) -> Result<Rules, Problem> {
        if let Some(p) = problems(window, freeze, field, freeze_field)
            .into_iter()
            .next()
        {
            return Err(p);
        }
        let tz_name = window
            .and_then(|w| w.time_zone.clone())
            .unwrap_or_else(|| "UTC".to_owned());
        let tz = TimeZone::get(&tz_name).map_err(|_| Problem {
            field: format!("{field}.timeZone"),
            message: format!("unknown time zone {tz_name:?}"),
        })?;
        let window = window.map(|w| {
            let mut days: Vec<Day> = w.days.iter().copied().map(day).collect();
            days.sort_by_key(|d| d.to_monday_zero_offset());
            (
                days,
                clock(&w.from, false).unwrap_or(0),
                clock(&w.to, true).unwrap_or(DAY_SECONDS),
            )
        });
        let freeze = freeze.cloned().unwrap_or_default();
        Ok(Rules {
            tz,
            tz_name,
            window,
            friday_from: freeze.friday_from.as_deref().and_then(|f| clock(f, false)),
            weekends: freeze.weekends == Some(true),
            blackouts: freeze
                .blackouts
                .iter()
                .filter_map(|b| Some((date(&b.date)?, b.reason.clone())))
                .collect(),
        })
    }

    fn in_window(&self, local: DateTime) -> bool {
        let Some((days, from, to)) = &self.window else {
            return true;
        };
        let s = seconds_of(local.time());
        days.contains(&local.weekday()) && *from <= s && s < *to
    }

    fn frozen(&self, local: DateTime) -> Option<String> {
        let d = local.date();
        if let Some((_, reason)) = self.blackouts.iter().find(|(b, _)| *b == d) {
            return Some(match reason {
                Some(r) => format!("{d}: {r}"),
                None => format!("{d}: a blackout date"),
            });
        }
        if self.weekends && matches!(d.weekday(), Day::Saturday | Day::Sunday) {
            return Some("weekend".to_owned());
        }
        match self.friday_from {
            Some(f) if d.weekday() == Day::Friday && seconds_of(local.time()) >= f => {
                Some(format!("Friday after {}", hhmm(f)))
            }
            _ => None,
        }
    }

    /// The hours of `d` that are open, as seconds since midnight, if any.
    fn open_hours(&self, d: Date) -> Option<(i32, i32)> {
        if self.blackouts.iter().any(|(b, _)| *b == d)
            || (self.weekends && matches!(d.weekday(), Day::Saturday | Day::Sunday))
        {
            return None;
        }
        let (lo, mut hi) = match &self.window {
            Some((days, from, to)) => {
                if !days.contains(&d.weekday()) {
                    return None;
                }
                (*from, *to)
            }
            None => (0, DAY_SECONDS),
        };
        if d.weekday() == Day::Friday
            && let Some(f) = self.friday_from
        {
            hi = hi.min(f);
        }
        (lo < hi).then_some((lo, hi))
    }

    fn next_opening(&self, at: Timestamp) -> Option<Timestamp> {
        let now = at.to_zoned(self.tz.clone()).datetime();
        let today = now.date();
        for n in 0..=HORIZON_DAYS {
            let d = today.checked_add(n.days()).ok()?;
            let Some((lo, _)) = self.open_hours(d) else {
                continue;
            };
            if n == 0 && lo <= seconds_of(now.time()) {
                continue;
            }
            let opening = self.instant(d, lo)?;
            if opening > at {
                return Some(opening);
            }
        }
        None
    }

    /// The first instant whose local time on `d` is `seconds` past midnight or later.
    fn instant(&self, d: Date, seconds: i32) -> Option<Timestamp> {
        let time = Time::new(
            (seconds / 3600) as i8,
            ((seconds % 3600) / 60) as i8,
            (seconds % 60) as i8,
            0,
        )
        .ok()?;
        let amb = self.tz.to_ambiguous_timestamp(d.to_datetime(time));
        match amb.offset() {
            // Clocks jump over this time: the gap's end is the first instant after it.
            AmbiguousOffset::Gap { .. } => {
                let before = amb.earlier().ok()?;
                self.tz.following(before).next().map(|t| t.timestamp())
            }
            // Clocks go back over it: the first time it happens.
            _ => amb.earlier().ok(),
        }
    }

    fn words(&self, now: Timestamp, t: Timestamp) -> String {
        let z = t.to_zoned(self.tz.clone());
        let soon = t.duration_since(now).as_secs() < i64::from(6 * DAY_SECONDS);
        let when = if soon {
            format!("{} {}", short(z.weekday()), hhmm(seconds_of(z.time())))
        } else {
            format!(
                "{} {} {}",
                short(z.weekday()),
                z.date(),
                hhmm(seconds_of(z.time()))
            )
        };
        format!("{when} {}", self.tz_name)
    }

    fn describe(&self) -> String {
        let window = match &self.window {
            Some((days, from, to)) => format!(
                "{} {}-{} {}",
                days_words(days),
                hhmm(*from),
                hhmm(*to),
                self.tz_name
            ),
            None => format!("any time ({})", self.tz_name),
        };
        let mut parts = Vec::new();
        let mut plural = false;
        if let Some(f) = self.friday_from {
            parts.push(format!("Friday after {}", hhmm(f)));
        }
        if self.weekends {
            parts.push("weekends".to_owned());
            plural = true;
        }
        match self.blackouts.len() {
            0 => {}
            1 => parts.push(format!("1 blackout date ({})", self.blackouts[0].0)),
            n => {
                parts.push(format!("{n} blackout dates"));
                plural = true;
            }
        }
        if parts.is_empty() {
            return window;
        }
        let verb = if plural || parts.len() > 1 {
            "need"
        } else {
            "needs"
        };
        format!("{window}; {} {verb} an override", and_list(&parts))
    }
}

fn and_list(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// `Mon-Thu`, `Mon, Wed, Fri`, `every day`.
fn days_words(days: &[Day]) -> String {
    if days.len() == 7 {
        return "every day".to_owned();
    }
    let mut runs: Vec<(Day, Day)> = Vec::new();
    for d in days {
        match runs.last_mut() {
            Some((_, end)) if end.to_monday_zero_offset() + 1 == d.to_monday_zero_offset() => {
                *end = *d
            }
            _ => runs.push((*d, *d)),
        }
    }
    runs.iter()
        .map(|(a, b)| {
            if a == b {
                short(*a).to_owned()
            } else {
                format!("{}-{}", short(*a), short(*b))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
