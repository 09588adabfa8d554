//! How `get --watch` puts its frames on the screen: redrawn in place on a
//! terminal, one block per change on a pipe. Everything here returns the bytes
//! to write, so the redraw is tested without a terminal.

use super::style::Style;

/// Hide the cursor while frames are redrawn, so it does not flicker across them.
const HIDE_CURSOR: &str = "\x1b[?25l";
const SHOW_CURSOR: &str = "\x1b[?25h";
/// Cursor home, then clear the whole screen.
const CLEAR: &str = "\x1b[H\x1b[2J";
/// Clear to the end of the line: a shorter line must not leave the end of the longer one.
const CLEAR_LINE: &str = "\x1b[K";
/// Clear from the cursor down: a shorter frame must not leave the bottom of the taller one.
const CLEAR_BELOW: &str = "\x1b[J";

/// Used when the terminal does not say how large it is.
pub const FALLBACK_SIZE: (usize, usize) = (80, 24);

/// `(columns, rows)` of the terminal on stdout, or [`FALLBACK_SIZE`].
pub fn terminal_size() -> (usize, usize) {
    match crossterm::terminal::size() {
        Ok((cols, rows)) if cols > 0 && rows > 0 => (usize::from(cols), usize::from(rows)),
        _ => FALLBACK_SIZE,
    }
}

/// Columns a line takes on screen: the escape sequences `Style` paints with take none.
pub fn visible_width(line: &str) -> usize {
    let mut n = 0;
    let mut in_escape = false;
    for c in line.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, c) if c.is_ascii_alphabetic() => in_escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

/// Terminal rows `line` takes on a terminal `width` columns wide: a longer line
/// wraps, an empty one still takes a row. The redraw moves up by exactly this
/// many rows, so a miscount would stack frames or eat the lines above the view.
pub fn rows(line: &str, width: usize) -> usize {
    visible_width(line).max(1).div_ceil(width.max(1))
}

/// The watch's output: a terminal (redraw in place) or a pipe (append a block per change).
#[derive(Debug)]
pub struct Screen {
    tty: bool,
    /// The last block a pipe got, so an unchanged frame is not repeated.
    last: String,
    /// Terminal rows the previous frame took, to move back over it.
    rows: usize,
    drawn: bool,
}

impl Screen {
    pub fn new(tty: bool) -> Screen {
        Screen {
            tty,
            last: String::new(),
            rows: 0,
            drawn: false,
        }
    }

    /// What to write to show `frame` at `clock` (the local time, as text).
    ///
    /// A terminal of `size` `(columns, rows)` gets the frame redrawn over the
    /// previous one with a footer, every time (countdowns move). A pipe gets a
    /// `--- clock` block only when the release `changed` and the text differs.
    pub fn update(
        &mut self,
        frame: &str,
        clock: &str,
        changed: bool,
        size: (usize, usize),
        style: Style,
    ) -> Option<String> {
        if !self.tty {
            if !changed || frame == self.last {
                return None;
            }
            self.last = frame.to_owned();
            return Some(format!("--- {clock}\n{frame}"));
        }
        let (width, height) = size;
        let footer = style.dim(&format!("updated {clock} · Ctrl-C to stop watching"));
        let lines: Vec<&str> = frame.lines().chain(["", footer.as_str()]).collect();
        let rows: usize = lines.iter().map(|l| rows(l, width)).sum();
        let mut out = String::new();
        if !self.drawn {
            out.push_str(HIDE_CURSOR);
        }
        if rows + 1 >= height {
            // Taller than the screen: moving up cannot reach the top, so start from a clean screen.
            out.push_str(CLEAR);
        } else if self.rows > 0 {
            // Back over the previous frame only, so what the terminal showed before stays.
            out.push_str(&format!("\x1b[{}A\r", self.rows));
        }
        for line in &lines {
            out.push_str(line);
            out.push_str(CLEAR_LINE);
            out.push('\n');
        }
        out.push_str(CLEAR_BELOW);
        self.rows = rows;
        self.drawn = true;
        Some(out)
    }

    /// What to write when the watch ends: the cursor back, once, if it was hidden.
    pub fn finish(&mut self) -> Option<&'static str> {
        let hidden = self.tty && self.drawn;
        self.drawn = false;
        hidden.then_some(SHOW_CURSOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: (usize, usize) = (80, 24);

    #[test]
    fn escape_sequences_take_no_columns() {
        let s = Style::color();
        assert_eq!(visible_width(&s.bold(&s.red("abc"))), 3);
        assert_eq!(visible_width("\x1b[2Aab\x1b[K"), 2);
        // Bars and badges are one column per character.
        assert_eq!(visible_width(&s.bar(50, 20)), 20);
        assert_eq!(visible_width("✔ Succeeded"), 11);
    }

    #[test]
    fn a_line_takes_as_many_rows_as_it_wraps_to() {
        assert_eq!(rows("", 80), 1);
        assert_eq!(rows(&"x".repeat(80), 80), 1);
        assert_eq!(rows(&"x".repeat(81), 80), 2);
        assert_eq!(rows(&"x".repeat(161), 80), 3);
        // Colour does not make a line that fits wrap.
        assert_eq!(rows(&Style::color().green(&"x".repeat(80)), 80), 1);
    }

    #[test]
    fn the_first_frame_hides_the_cursor_and_draws_where_the_cursor_is() {
        let mut screen = Screen::new(true);
        let out = screen
            .update("a\nb\n", "10:00:00", true, SIZE, Style::plain())
            .unwrap();
        assert!(out.starts_with(HIDE_CURSOR), "{out:?}");
        assert!(!out.contains("A\r"), "moved up on the first frame: {out:?}");
        assert_eq!(
            out.strip_prefix(HIDE_CURSOR).unwrap(),
            "a\x1b[K\nb\x1b[K\n\x1b[K\nupdated 10:00:00 · Ctrl-C to stop watching\x1b[K\n\x1b[J"
        );
    }

    #[test]
    fn the_next_frame_moves_back_over_every_row_the_last_one_took() {
        let mut screen = Screen::new(true);
        // Two lines, one of them wrapping to two rows, then the blank and the footer: 5 rows.
        let wide = "w".repeat(100);
        screen.update(
            &format!("a\n{wide}\n"),
            "10:00:00",
            true,
            SIZE,
            Style::plain(),
        );
        let out = screen
            .update("a\n", "10:00:01", false, SIZE, Style::plain())
            .unwrap();
        assert!(out.starts_with("\x1b[5A\r"), "{out:?}");
        assert!(!out.contains(HIDE_CURSOR));
        // A terminal redraws every second even when the release did not change: countdowns move.
        assert!(out.contains("updated 10:00:01"));
        assert!(
            out.ends_with(CLEAR_BELOW),
            "the taller frame's rest is cleared"
        );
        let next = screen
            .update("a\n", "10:00:02", false, SIZE, Style::plain())
            .unwrap();
        assert!(next.starts_with("\x1b[3A\r"), "{next:?}");
    }

    #[test]
    fn a_frame_taller_than_the_screen_starts_from_a_clean_screen() {
        let mut screen = Screen::new(true);
        let tall = "line\n".repeat(30);
        let out = screen
            .update(&tall, "10:00:00", true, SIZE, Style::plain())
            .unwrap();
        assert!(out.contains(CLEAR), "{out:?}");
        assert!(!out.contains("A\r"));
        // The same frame fits a taller terminal and is drawn in place there.
        let mut big = Screen::new(true);
        let out = big
            .update(&tall, "10:00:00", true, (80, 50), Style::plain())
            .unwrap();
        assert!(!out.contains(CLEAR), "{out:?}");
    }

    #[test]
    fn a_pipe_gets_a_block_per_change_and_never_an_escape() {
        let mut screen = Screen::new(false);
        let first = screen
            .update("phase A\n", "10:00:00", true, SIZE, Style::plain())
            .unwrap();
        assert_eq!(first, "--- 10:00:00\nphase A\n");
        assert_eq!(
            screen.update("phase A\n", "10:00:01", true, SIZE, Style::plain()),
            None,
            "the same text again"
        );
        assert_eq!(
            screen.update("phase B\n", "10:00:02", false, SIZE, Style::plain()),
            None,
            "a tick without a change"
        );
        let second = screen
            .update("phase B\n", "10:00:03", true, SIZE, Style::plain())
            .unwrap();
        assert_eq!(second, "--- 10:00:03\nphase B\n");
        assert_eq!(screen.finish(), None, "a pipe's cursor was never hidden");
    }

    #[test]
    fn finishing_shows_the_cursor_once_and_only_after_a_frame() {
        let mut screen = Screen::new(true);
        assert_eq!(screen.finish(), None);
        screen.update("a\n", "10:00:00", true, SIZE, Style::plain());
        assert_eq!(screen.finish(), Some(SHOW_CURSOR));
        assert_eq!(screen.finish(), None);
    }
}
