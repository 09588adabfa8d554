//! How the plugin's text looks: colour only on a terminal, plain when piped,
//! so scripts and CI logs get stable lines and people get a readable screen.

use std::io::IsTerminal;
use std::time::Duration;

/// Whether to colour output, and which glyphs to draw bars with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    color: bool,
}

impl Style {
    /// No escape codes at all: what pipes, files and golden tests get.
    pub fn plain() -> Style {
        Style { color: false }
    }

    /// ANSI colours and block bars.
    pub fn color() -> Style {
        Style { color: true }
    }

    /// Colour when stdout is a terminal, unless `NO_COLOR` is set or `TERM=dumb`
    /// (the conventions every CLI user expects to be able to switch colour off with).
    pub fn for_stdout() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        Style {
            color: std::io::stdout().is_terminal() && !no_color && !dumb,
        }
    }

    pub fn is_color(self) -> bool {
        self.color
    }

    fn paint(self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
    pub fn bold(self, s: &str) -> String {
        self.paint("1", s)
    }
    pub fn dim(self, s: &str) -> String {
        self.paint("2", s)
    }
    pub fn red(self, s: &str) -> String {
        self.paint("31", s)
    }
    pub fn green(self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn yellow(self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn blue(self, s: &str) -> String {
        self.paint("34", s)
    }
    pub fn cyan(self, s: &str) -> String {
        self.paint("36", s)
    }

    /// A `width`-cell bar filled to `weight` percent.
    pub fn bar(self, weight: i32, width: usize) -> String {
        let filled = (usize::try_from(weight.clamp(0, 100)).unwrap_or(0) * width).div_ceil(100);
        let (on, off) = if self.color {
            ("█", "░")
        } else {
            ("#", ".")
        };
        let bar = format!("{}{}", on.repeat(filled), off.repeat(width - filled));
        if self.color {
            self.cyan(&bar)
        } else {
            format!("[{bar}]")
        }
    }
}

/// A countdown: `4:05`, or `1:02:03` past an hour; what changes every second on screen.
pub fn clock(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

pub use signalman_core::text::number;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdowns_read_like_a_clock() {
        assert_eq!(clock(Duration::from_secs(5)), "0:05");
        assert_eq!(clock(Duration::from_secs(245)), "4:05");
        assert_eq!(clock(Duration::from_secs(3723)), "1:02:03");
    }

    #[test]
    fn numbers_keep_the_digits_that_matter() {
        assert_eq!(number(0.0), "0");
        assert_eq!(number(0.001), "0.001");
        assert_eq!(number(0.000_123_456), "0.0001235");
        assert_eq!(number(0.3), "0.3");
        assert_eq!(number(12.5), "12.5");
        assert_eq!(number(2500.4), "2500");
    }

    #[test]
    fn bars_fill_to_the_weight() {
        let s = Style::plain();
        assert_eq!(s.bar(0, 10), "[..........]");
        assert_eq!(s.bar(25, 10), "[###.......]");
        assert_eq!(s.bar(100, 10), "[##########]");
    }
}
