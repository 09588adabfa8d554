//! Where a placeholder stands in a query: bare, or inside which kind of
//! PromQL string. Its value is written for that place ([`escape`]), and a
//! place no value can be written into safely is refused by `validate`
//! ([`misplaced`]), so no value can end its string early and change the query.

/// The lexical place a position of a PromQL query is in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Place {
    /// Code: a metric or label name, an operator, a number.
    #[default]
    Bare,
    /// A `"double-quoted"` string: backslash escapes, `\"` is a quote.
    Double,
    /// A `'single-quoted'` string: backslash escapes, `\'` is a quote.
    Single,
    /// A `` `raw` `` string: no escapes; it ends at the next backquote.
    Raw,
    /// A `# comment`, to the end of the line.
    Comment,
}

/// Follows a query's text piece by piece, as PromQL's lexer reads it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lexer {
    place: Place,
    /// The last character was a backslash inside a quoted string.
    escaped: bool,
}

impl Lexer {
    pub fn place(&self) -> Place {
        self.place
    }

    /// Read `text`, which follows what was read before.
    pub fn feed(&mut self, text: &str) {
        for c in text.chars() {
            if self.escaped {
                self.escaped = false;
                continue;
            }
            self.place = match (self.place, c) {
                (Place::Bare, '"') => Place::Double,
                (Place::Bare, '\'') => Place::Single,
                (Place::Bare, '`') => Place::Raw,
                (Place::Bare, '#') => Place::Comment,
                (Place::Double | Place::Single, '\\') => {
                    self.escaped = true;
                    self.place
                }
                (Place::Double, '"') | (Place::Single, '\'') | (Place::Raw, '`') => Place::Bare,
                (Place::Comment, '\n') => Place::Bare,
                (place, _) => place,
            };
        }
    }
}

/// `value` as it must be written at `place` to read back as itself: in a
/// quoted string the backslash, that string's quote and line breaks are
/// escaped. Anywhere else it is written as in a double-quoted string (no
/// quote or line break can end the comment or start a string), but only a
/// string keeps it one value: `validate` refuses those places.
pub fn escape(value: &str, place: Place) -> String {
    let quote = if place == Place::Single { '\'' } else { '"' };
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The first value placeholder of `template` (one of `values` but `track`,
/// a whole matcher that belongs bare in a selector; written `{{ name }}`)
/// that stands where its value would not stay one value, and
/// why, as `validate` says it: bare in the query, where a Service named
/// `checkout-web` turns `{{service}}_errors` into a subtraction, or in a raw
/// string, which has no escapes. A comment is harmless.
pub fn misplaced(template: &str, values: &[&str]) -> Option<String> {
    let mut lexer = Lexer::default();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        lexer.feed(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find("}}")?;
        let written = &rest[open..open + 2 + close + 2];
        let name = after[..close].trim_matches([' ', '\t']);
        if !after.starts_with('{') && name != "track" && values.contains(&name) {
            match lexer.place() {
                Place::Bare => {
                    return Some(format!(
                        "{written:?} stands outside a quoted string; its value (e.g. a name with '-') \
                         would change the query: put it in a label matcher's value, e.g. \
                         {{__name__=\"{{{{{name}}}}}_errors_total\"}} or {name}=\"{{{{{name}}}}}\""
                    ));
                }
                Place::Raw => {
                    return Some(format!(
                        "{written:?} stands in a `raw string`, where its value cannot be escaped; use \
                         double quotes, e.g. {name}=\"{{{{{name}}}}}\""
                    ));
                }
                Place::Double | Place::Single | Place::Comment => {}
            }
        } else {
            lexer.feed(written);
        }
        rest = &after[close + 2..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: [&str; 3] = ["service", "namespace", "track"];

    #[test]
    fn the_lexer_knows_strings_escapes_and_comments() {
        let place = |text: &str| {
            let mut l = Lexer::default();
            l.feed(text);
            l.place()
        };
        assert_eq!(place("x{a=\""), Place::Double);
        assert_eq!(place("x{a=\"b\\\""), Place::Double);
        assert_eq!(place("x{a=\"b\\\\\""), Place::Bare);
        assert_eq!(place("x{a='b\""), Place::Single);
        assert_eq!(place("x{a=`b\\`"), Place::Bare);
        assert_eq!(place("x # a \"comment"), Place::Comment);
        assert_eq!(place("x # a comment\ny{a=`"), Place::Raw);
        // Fed in pieces, an escape carries over.
        let mut l = Lexer::default();
        l.feed(r#"x{a="\"#);
        l.feed(r#"""#);
        assert_eq!(l.place(), Place::Double);
    }

    #[test]
    fn a_value_is_escaped_for_the_string_it_stands_in() {
        assert_eq!(escape(r#"a"b'c\d"#, Place::Double), r#"a\"b'c\\d"#);
        assert_eq!(escape(r#"a"b'c\d"#, Place::Single), r#"a"b\'c\\d"#);
        assert_eq!(escape("a\nb\tc\rd", Place::Double), r"a\nb\tc\rd");
    }

    #[test]
    fn a_value_placeholder_must_stand_in_a_quoted_string() {
        assert_eq!(misplaced(r#"up{service="{{service}}"}"#, &VALUES), None);
        assert_eq!(misplaced("up{service='{{ service }}'}", &VALUES), None);
        assert_eq!(misplaced("up # {{service}}", &VALUES), None);
        // {{track}} is a whole matcher: bare is where it belongs.
        assert_eq!(misplaced("up{ {{track}} }", &VALUES), None);
        assert_eq!(
            misplaced("sum(rate({{service}}_errors_total[1m]))", &VALUES).as_deref(),
            Some(
                "\"{{service}}\" stands outside a quoted string; its value (e.g. a name with '-') would \
                 change the query: put it in a label matcher's value, e.g. \
                 {__name__=\"{{service}}_errors_total\"} or service=\"{{service}}\""
            )
        );
        assert_eq!(
            misplaced("up{namespace=`{{ namespace }}`}", &VALUES).as_deref(),
            Some(
                "\"{{ namespace }}\" stands in a `raw string`, where its value cannot be escaped; use \
                 double quotes, e.g. namespace=\"{{namespace}}\""
            )
        );
        // After a string closes, the next placeholder is bare again.
        assert!(misplaced(r#"up{a="x\"", b={{service}}}"#, &VALUES).is_some());
    }
}
