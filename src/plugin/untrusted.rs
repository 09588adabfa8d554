//! Text the plugin did not write: anyone who can write a Release (or the
//! Deployment or Prometheus behind it) chooses its owner, summary, names and
//! messages. A terminal obeys escape sequences wherever they come from, so an
//! owner of `\x1b[2J` would clear the screen of whoever runs `get`, and others
//! retitle the window, rewrite the lines above or hide text. Every view shows
//! such text escaped, visibly: ESC prints as `\u{1b}`.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// `text` with every control character (C0, DEL, C1) and every bidirectional
/// override written out as `\u{..}`, so it shows as what it is and cannot
/// steer the terminal or reorder the line around it.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(steers_the_terminal) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if steers_the_terminal(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn steers_the_terminal(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `value` with [`escape`] applied to every string in it, map keys included,
/// for a view that prints many of its fields: none is missed, nor any field
/// added later. Borrowed when nothing needed escaping, which is the usual case.
///
/// A view computes what it decides (validity, waves) from the original and
/// only prints from this copy: escaping can change a string's length, and so a
/// verdict that depends on it.
pub fn escaped<T: Serialize + DeserializeOwned + Clone>(value: &T) -> Cow<'_, T> {
    // Release and the other types shown have string keys only, so they serialize.
    let mut tree = serde_json::to_value(value).expect("a value with string keys serializes");
    if !escape_strings(&mut tree) {
        return Cow::Borrowed(value);
    }
    // Only strings that held control characters changed, and no typed field
    // (timestamp, duration, enum) can hold one, so the copy reads back.
    Cow::Owned(serde_json::from_value(tree).expect("escaping strings keeps the value readable"))
}

/// Escape every string in `tree`; whether any changed.
fn escape_strings(tree: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match tree {
        Value::String(s) => match escape(s) {
            Cow::Borrowed(_) => false,
            Cow::Owned(e) => {
                *s = e;
                true
            }
        },
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, v| escape_strings(v) | changed),
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().filter(|k| escape(k) != **k).cloned().collect();
            let renamed = !keys.is_empty();
            for k in keys {
                if let Some(v) = map.remove(&k) {
                    map.insert(escape(&k).into_owned(), v);
                }
            }
            map.values_mut()
                .fold(renamed, |changed, v| escape_strings(v) | changed)
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Release;

    #[test]
    fn control_characters_are_written_out_and_the_rest_is_kept() {
        assert_eq!(escape("\x1b[2J"), "\\u{1b}[2J");
        // The one-byte CSI of C1, DEL, a bell ending a title change, newlines and tabs.
        assert_eq!(escape("a\u{9b}31mb"), "a\\u{9b}31mb");
        assert_eq!(escape("\x1b]0;owned\x07"), "\\u{1b}]0;owned\\u{7}");
        assert_eq!(escape("x\u{7f}\ny\tz\0"), "x\\u{7f}\\u{a}y\\u{9}z\\u{0}");
        // Bidirectional overrides reorder what follows on the line.
        assert_eq!(escape("team\u{202e}kcehc"), "team\\u{202e}kcehc");
        assert!(matches!(
            escape("team-checkout — ✔ café 50%"),
            Cow::Borrowed(_)
        ));
    }

    fn release(owner: &str) -> Release {
        let spec = signalman_core::testing::spec()
            .owner(owner)
            .services(&[("web", &[])])
            .metric_at_most("error-rate", "q", 0.01)
            .build();
        Release::new("train", spec)
    }

    #[test]
    fn every_string_of_a_release_is_escaped_and_nothing_else_changes() {
        let mut r = release("\x1b[2Jteam");
        r.spec.services[0]
            .change
            .images
            .insert("side\x1bcar".into(), "img:v2\x07".into());
        let shown = escaped(&r);
        assert!(matches!(shown, Cow::Owned(_)));
        assert_eq!(shown.spec.owner, "\\u{1b}[2Jteam");
        let images = &shown.spec.services[0].change.images;
        assert_eq!(images["side\\u{1b}car"], "img:v2\\u{7}");
        assert_eq!(images["main"], "web:v2");
        assert_eq!(shown.metadata.name.as_deref(), Some("train"));
        let metric = &shown
            .spec
            .defaults
            .as_ref()
            .unwrap()
            .analysis
            .as_ref()
            .unwrap()
            .metrics[0];
        assert_eq!(metric.max, Some(0.01));
    }

    #[test]
    fn a_clean_release_is_not_copied() {
        let r = release("team-checkout");
        assert!(matches!(escaped(&r), Cow::Borrowed(_)));
    }
}
