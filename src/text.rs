//! Text that came from elsewhere (a remote's properties, names, error output) made safe to show.
//!
//! A remote that controls a user property or an error message must not control the operator's
//! terminal: escape sequences (`ESC ]0;…BEL` retitles, `ESC [2J` clears), a carriage return that
//! overwrites a line, or a bidi override that reorders it. Every such character is shown as a
//! `\u00XX` escape instead, which is also a valid escape inside a JSON string, so one function
//! serves plain text and JSON alike.

use std::borrow::Cow;

/// True for a character that can change what a terminal shows beyond printing a glyph.
fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        // bidi embeddings/overrides and isolates: reorder the rest of the line
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// `s` with every unsafe character escaped as `\uXXXX`; newlines and tabs kept.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_unsafe(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One line for a log or a table: like `escape_controls`, and a newline escaped too.
pub fn one_line(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\n' || is_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(escape_controls(s).replace('\n', "\\u000a"))
}

/// "exit 1: cannot open 'x': dataset does not exist" — the first stderr lines of a failed command.
pub fn describe_failure(code: Option<i32>, stderr: &str) -> String {
    let msg: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .collect();
    let status = match code {
        Some(c) => format!("exit {c}"),
        None => "killed".to_string(),
    };
    if msg.is_empty() {
        status
    } else {
        // stderr is the remote's to choose: never let it reach a terminal raw
        format!("{status}: {}", escape_controls(&clip(&msg.join("; "), 1024)))
    }
}

/// At most `max` bytes of `s` (cut at a character boundary), saying how much was cut: text a
/// remote chose (an error body) must not grow a journal, a log or a status file without bound.
pub fn clip(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}... ({} more bytes cut)", &s[..end], s.len() - end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_sequences_and_keeps_plain_text() {
        assert_eq!(escape_controls("tank/data@ferry.1"), "tank/data@ferry.1");
        assert!(matches!(escape_controls("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("\u{1b}]0;owned\u{7}\u{1b}[2J"),
            "\\u001b]0;owned\\u0007\\u001b[2J"
        );
        assert_eq!(escape_controls("a\rb\u{9b}c\u{7f}"), "a\\u000db\\u009bc\\u007f");
        assert_eq!(escape_controls("x\u{202e}y"), "x\\u202ey");
        assert_eq!(escape_controls("two\nlines\tand tab"), "two\nlines\tand tab");
        assert_eq!(one_line("two\nlines"), "two\\u000alines");
    }

    #[test]
    fn clips_long_text_at_a_character_boundary() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("ééé", 3), "é... (4 more bytes cut)");
        assert!(clip(&"x".repeat(4 << 20), 1024).len() < 1100);
    }

    #[test]
    fn escaped_text_is_still_valid_inside_json_strings() {
        let raw = "\u{1b}[2J\u{9b}31m";
        let json = format!("\"{}\"", escape_controls(raw));
        let back: String = serde_json::from_str(&json).unwrap();
        assert_eq!(back, raw);
    }
}
