use super::*;
use crate::api::Blackout;
use Weekday::*;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn window(days: &[Weekday], from: &str, to: &str, tz: &str) -> Window {
    Window {
        days: days.to_vec(),
        from: from.into(),
        to: to.into(),
        time_zone: Some(tz.into()),
    }
}

fn at(w: &Window, f: Option<&Freeze>, when: &str) -> WindowCheck {
    check(Some(w), f, "spec.window", t(when)).unwrap()
}

const MON_THU: &[Weekday] = &[Monday, Tuesday, Wednesday, Thursday];
const MON_FRI: &[Weekday] = &[Monday, Tuesday, Wednesday, Thursday, Friday];

#[test]
fn nine_is_nine_local_time_in_winter_and_in_summer() {
    let w = window(MON_THU, "09:00", "17:00", "Europe/Berlin");
    // Monday 2026-01-12 (CET, +1) and Monday 2026-07-13 (CEST, +2), before 09:00 local.
    assert_eq!(
        at(&w, None, "2026-01-12T07:00:00Z").next_opening,
        Some(t("2026-01-12T08:00:00Z"))
    );
    assert_eq!(
        at(&w, None, "2026-07-13T06:00:00Z").next_opening,
        Some(t("2026-07-13T07:00:00Z"))
    );
    assert!(at(&w, None, "2026-01-12T08:00:00Z").open);
    assert!(!at(&w, None, "2026-01-12T07:59:59Z").open);
    assert!(at(&w, None, "2026-07-13T14:59:59Z").open);
    assert!(!at(&w, None, "2026-07-13T15:00:00Z").open);
}

#[test]
fn a_window_at_a_time_the_spring_change_skips_opens_when_the_clocks_jump() {
    // Berlin, Sunday 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00 UTC.
    let w = window(&[Sunday], "02:30", "04:00", "Europe/Berlin");
    let c = at(&w, None, "2026-03-29T00:00:00Z");
    assert!(!c.open);
    assert_eq!(c.next_opening, Some(t("2026-03-29T01:00:00Z")));
    assert!(!at(&w, None, "2026-03-29T00:59:59Z").open);
    assert!(at(&w, None, "2026-03-29T01:00:00Z").open);
    // 04:00 CEST is 02:00 UTC: one and a half hours of wall clock were one real hour.
    assert!(at(&w, None, "2026-03-29T01:59:59Z").open);
    assert!(!at(&w, None, "2026-03-29T02:00:00Z").open);
    // New York, Sunday 2026-03-08: 02:00 EST becomes 03:00 EDT at 07:00 UTC.
    let w = window(&[Sunday], "02:30", "05:00", "America/New_York");
    let c = at(&w, None, "2026-03-08T06:00:00Z");
    assert_eq!(c.next_opening, Some(t("2026-03-08T07:00:00Z")));
    assert_eq!(c.opens.as_deref(), Some("Sun 03:00 America/New_York"));
}

#[test]
fn the_hour_the_fall_change_repeats_is_inside_the_window_both_times() {
    // Berlin, Sunday 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00 UTC.
    let w = window(&[Sunday], "02:00", "03:00", "Europe/Berlin");
    assert_eq!(
        at(&w, None, "2026-10-24T12:00:00Z").next_opening,
        Some(t("2026-10-25T00:00:00Z")),
        "opens at the first 02:00"
    );
    for open in [
        "2026-10-25T00:00:00Z",
        "2026-10-25T00:59:59Z",
        "2026-10-25T01:00:00Z",
        "2026-10-25T01:59:59Z",
    ] {
        assert!(at(&w, None, open).open, "{open}");
    }
    assert!(!at(&w, None, "2026-10-25T02:00:00Z").open);
    assert!(!at(&w, None, "2026-10-24T23:59:59Z").open);
    // New York, Sunday 2026-11-01: 02:00 EDT becomes 01:00 EST at 06:00 UTC.
    let w = window(&[Sunday], "01:00", "02:00", "America/New_York");
    assert!(at(&w, None, "2026-11-01T05:00:00Z").open);
    assert!(at(&w, None, "2026-11-01T06:30:00Z").open);
    assert!(!at(&w, None, "2026-11-01T07:00:00Z").open);
}

#[test]
fn time_zones_east_and_west_of_utc() {
    // Thursday 2026-11-26 10:00 UTC is 19:00 in Tokyo and 02:00 in Los Angeles.
    let tokyo = window(MON_FRI, "09:00", "17:00", "Asia/Tokyo");
    let c = at(&tokyo, None, "2026-11-26T10:00:00Z");
    assert!(!c.open);
    assert_eq!(c.next_opening, Some(t("2026-11-27T00:00:00Z")));
    assert_eq!(c.opens.as_deref(), Some("Fri 09:00 Asia/Tokyo"));
    let la = window(MON_FRI, "09:00", "17:00", "America/Los_Angeles");
    let c = at(&la, None, "2026-11-26T10:00:00Z");
    assert!(!c.open);
    assert_eq!(c.next_opening, Some(t("2026-11-26T17:00:00Z")));
    assert_eq!(c.opens.as_deref(), Some("Thu 09:00 America/Los_Angeles"));
    // Without a time zone the hours are UTC.
    let mut utc = la.clone();
    utc.time_zone = None;
    assert!(at(&utc, None, "2026-11-26T10:00:00Z").open);
}

fn freeze() -> Freeze {
    Freeze {
        friday_from: Some("12:00".into()),
        weekends: Some(true),
        blackouts: vec![
            Blackout {
                date: "2026-12-24".into(),
                reason: Some("year-end freeze".into()),
            },
            Blackout {
                date: "2026-12-28".into(),
                reason: None,
            },
        ],
    }
}

#[test]
fn friday_after_the_cut_off_is_frozen_until_monday() {
    let w = window(MON_FRI, "09:00", "17:00", "Europe/Berlin");
    let f = freeze();
    // Friday 2026-11-27, 11:00 and 13:00 in Berlin.
    assert!(at(&w, Some(&f), "2026-11-27T10:00:00Z").open);
    let c = at(&w, Some(&f), "2026-11-27T12:00:00Z");
    assert!(!c.open);
    assert_eq!(c.frozen.as_deref(), Some("Friday after 12:00"));
    assert_eq!(c.next_opening, Some(t("2026-11-30T08:00:00Z")));
    assert_eq!(c.opens.as_deref(), Some("Mon 09:00 Europe/Berlin"));
    // Friday before the window opens: today until 12:00 is still open hours.
    let c = at(&w, Some(&f), "2026-11-27T06:00:00Z");
    assert_eq!((c.open, c.frozen.clone()), (false, None));
    assert_eq!(c.next_opening, Some(t("2026-11-27T08:00:00Z")));
}

#[test]
fn weekends_are_frozen_even_in_an_all_week_window() {
    let w = window(
        &[
            Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday,
        ],
        "00:00",
        "24:00",
        "UTC",
    );
    let f = Freeze {
        weekends: Some(true),
        ..Default::default()
    };
    let c = at(&w, Some(&f), "2026-11-28T10:00:00Z");
    assert_eq!(c.frozen.as_deref(), Some("weekend"));
    assert_eq!(c.next_opening, Some(t("2026-11-30T00:00:00Z")));
    assert_eq!(
        c.describe,
        "every day 00:00-24:00 UTC; weekends need an override"
    );
    // No window at all: only the freeze.
    let c = check(None, Some(&f), "spec.window", t("2026-11-29T23:59:59Z")).unwrap();
    assert!(!c.open);
    assert!(
        check(None, Some(&f), "spec.window", t("2026-11-30T00:00:00Z"))
            .unwrap()
            .open
    );
    assert!(
        check(None, None, "spec.window", t("2026-11-29T12:00:00Z"))
            .unwrap()
            .open
    );
}

#[test]
fn a_blackout_date_is_frozen_and_the_next_opening_skips_weekend_and_blackouts() {
    let w = window(MON_THU, "09:00", "17:00", "Europe/Berlin");
    let f = freeze();
    // Thursday 2026-12-24 10:00 Berlin.
    let c = at(&w, Some(&f), "2026-12-24T09:00:00Z");
    assert!(!c.open);
    assert_eq!(c.frozen.as_deref(), Some("2026-12-24: year-end freeze"));
    // Fri 25 is not a window day, 26-27 are the weekend, Mon 28 is a blackout.
    assert_eq!(c.next_opening, Some(t("2026-12-29T08:00:00Z")));
    assert_eq!(c.opens.as_deref(), Some("Tue 09:00 Europe/Berlin"));
    let c = at(&w, Some(&f), "2026-12-28T09:00:00Z");
    assert_eq!(c.frozen.as_deref(), Some("2026-12-28: a blackout date"));
    assert_eq!(
        c.describe,
        "Mon-Thu 09:00-17:00 Europe/Berlin; Friday after 12:00, weekends and 2 blackout dates need an override"
    );
}

#[test]
fn to_24_00_is_the_end_of_the_day() {
    let w = window(&[Monday], "20:00", "24:00", "UTC");
    assert!(at(&w, None, "2026-11-30T23:59:59Z").open);
    let c = at(&w, None, "2026-12-01T00:00:00Z");
    assert!(!c.open);
    assert_eq!(c.next_opening, Some(t("2026-12-07T20:00:00Z")));
    assert_eq!(c.opens.as_deref(), Some("Mon 2026-12-07 20:00 UTC"));
}

#[test]
fn a_window_that_never_opens_within_a_year_has_no_next_opening() {
    let w = window(&[Monday], "09:00", "17:00", "UTC");
    let f = Freeze {
        blackouts: (0..60)
            .map(|i| Blackout {
                date: Date::constant(2026, 11, 30)
                    .checked_add((i * 7).days())
                    .unwrap()
                    .to_string(),
                reason: None,
            })
            .collect(),
        ..Default::default()
    };
    let c = at(&w, Some(&f), "2026-11-26T10:00:00Z");
    assert_eq!(c.next_opening, None);
}

#[test]
fn bad_windows_name_the_field() {
    let mut w = window(MON_THU, "17:00", "09:00", "Mars/Olympus_Mons");
    let found = problems(Some(&w), None, "spec.window", "spec.freeze");
    assert_eq!(
        found.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        [
            "spec.window.timeZone: unknown time zone \"Mars/Olympus_Mons\"; use an IANA time zone such as Europe/Berlin or UTC",
            "spec.window: from must be before to (a window cannot cross midnight; use from 00:00 or to 24:00 and list both days)",
        ]
    );
    assert_eq!(
        check(Some(&w), None, "spec.window", t("2026-11-26T10:00:00Z"))
            .unwrap_err()
            .field,
        "spec.window.timeZone"
    );
    w.time_zone = Some("Europe/Berlin".into());
    w.from = "09:00".into();
    w.to = "9:00".into();
    assert_eq!(
        problems(Some(&w), None, "spec.window", "spec.freeze")[0].field,
        "spec.window.to"
    );
    w.to = "09:00".into();
    assert_eq!(
        problems(Some(&w), None, "spec.window", "spec.freeze")[0].field,
        "spec.window"
    );
    let f = Freeze {
        friday_from: Some("25:00".into()),
        blackouts: vec![Blackout {
            date: "2026-02-30".into(),
            reason: None,
        }],
        ..Default::default()
    };
    let fields: Vec<String> = problems(None, Some(&f), "spec.window", "spec.freeze")
        .into_iter()
        .map(|p| p.field)
        .collect();
    assert_eq!(
        fields,
        ["spec.freeze.fridayFrom", "spec.freeze.blackouts[0].date"]
    );
}
