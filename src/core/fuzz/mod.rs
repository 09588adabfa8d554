//! Property tests that fuzz what a Release's author controls: query templates
//! and the values filled into them ([`queries`]), and whole specs on their
//! way through validation, planning, the preflight and the engine ([`specs`]).
//!
//! `make unit` runs them at proptest's default 256 cases each, in seconds;
//! `make fuzz` runs them at `PROPTEST_CASES` (default there 100000) for a
//! bounded time in CI. Longer: `PROPTEST_CASES=1000000 make fuzz`. A failure
//! prints the minimal input and proptest saves its seed under
//! `src/proptest-regressions/fuzz/`, which is replayed first on every run.

mod queries;
mod specs;

use proptest::prelude::*;

/// Text an author could write to break out of a string or a placeholder:
/// quotes of every kind, braces, backslashes, line breaks, comment and
/// control characters, unicode (combining, right-to-left override, astral),
/// and plain words.
pub fn hostile_text() -> BoxedStrategy<String> {
    let piece = proptest::sample::select(vec![
        "\"",
        "'",
        "`",
        "\\",
        "\\\"",
        "\\'",
        "{",
        "}",
        "{{",
        "}}",
        "{{service}}",
        "{{ track }}",
        "\n",
        "\r",
        "\t",
        "#",
        "=",
        "=~",
        "!=",
        ",",
        "(",
        ")",
        "[",
        "]",
        " ",
        "or vector(1)",
        "é",
        "\u{202e}",
        "\u{0}",
        "\u{1b}[2J",
        "𝄞",
        "a\u{301}",
        "\u{a0}",
        "ü",
        "-",
        ".",
        "_",
        "web",
        "shop",
        "1",
    ]);
    prop_oneof![
        3 => proptest::collection::vec(piece, 0..8).prop_map(|p| p.concat()),
        1 => any::<String>(),
        1 => "[a-z0-9]([-a-z0-9.]{0,20}[a-z0-9])?",
    ]
    .boxed()
}

/// A value Kubernetes could hand the controller for `{{namespace}}`,
/// `{{service}}`, `{{release}}` or a hash: a DNS label or subdomain.
pub fn kubernetes_name() -> BoxedStrategy<String> {
    "[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?){0,2}".boxed()
}
