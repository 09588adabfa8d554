//! How a duration and a metric's bounds are written, wherever they are shown:
//! in the engine's status messages and Events and in the plugin's views, so a
//! message the controller wrote and the screen around it say them alike.

use std::time::Duration;

/// A duration the way a release manager says it: `47m`, `1h5m`, `2m30s`,
/// `45s`, `250ms`; no zero parts, and every result reads back as a Go duration.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 && d.as_millis() > 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// The bounds a measurement passes within: `<= 0.01`, `>= 100`, `in [1, 5]`.
/// The numbers are printed exactly as the spec holds them, never rounded: a
/// rounded bound could read as met by a value that fails it.
pub fn threshold(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!("in [{lo}, {hi}]"),
        (Some(lo), None) => format!(">= {lo}"),
        (None, Some(hi)) => format!("<= {hi}"),
        (None, None) => "any value".to_owned(),
    }
}

/// A metric value short enough for one line, precise enough to compare with a threshold
/// (a value, never a bound: see [`threshold`]).
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let s = if v == 0.0 {
        "0".to_owned()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.3}")
    } else {
        // Four significant digits for small ratios such as error rates.
        let digits = (-v.abs().log10()).floor() as usize + 4;
        format!("{v:.digits$}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_says_them() {
        let d = Duration::from_secs;
        assert_eq!(duration(d(47 * 60)), "47m");
        assert_eq!(duration(d(3900)), "1h5m");
        assert_eq!(duration(d(3605)), "1h5s");
        assert_eq!(duration(d(7200)), "2h");
        assert_eq!(duration(d(3661)), "1h1m1s");
        assert_eq!(duration(d(150)), "2m30s");
        assert_eq!(duration(d(45)), "45s");
        assert_eq!(duration(Duration::ZERO), "0s");
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        // Whole seconds only past one second: a bake is never configured finer.
        assert_eq!(duration(Duration::from_millis(1500)), "1s");
    }

    #[test]
    fn thresholds_read_like_the_bounds() {
        assert_eq!(threshold(None, Some(0.01)), "<= 0.01");
        assert_eq!(threshold(Some(100.0), None), ">= 100");
        assert_eq!(threshold(Some(1.0), Some(5.0)), "in [1, 5]");
        assert_eq!(threshold(None, None), "any value");
    }

    #[test]
    fn a_threshold_keeps_every_digit_it_was_given() {
        assert_eq!(threshold(None, Some(0.000_123_456)), "<= 0.000123456");
        assert_eq!(threshold(None, Some(0.999_95)), "<= 0.99995");
    }
}
