//! Escaping text from AWS, templates and users for GitHub-flavoured Markdown.
//!
//! GitHub renders HTML and Markdown in job summaries: a stack event reason like
//! `<img src=x>` or `[click](https://evil)` must show as text, and a `|` must not split a table
//! cell. Everything untrusted goes through [`text`] (or [`url_or_text`]).

/// Longest untrusted text in one place: a CloudFormation reason can be 4 KB, outputs too.
pub(crate) const MAX_CELL_CHARS: usize = 500;

/// Escapes `raw` for inline Markdown (a table cell or a paragraph), on one line, at most
/// `max` characters (then `…`).
pub(crate) fn text(raw: &str, max: usize) -> String {
    let mut out = String::with_capacity(raw.len().min(max) + 16);
    let mut last_space = false;
    for (count, c) in raw.chars().enumerate() {
        if count == max {
            out.push('…');
            break;
        }
        // One line: a newline would end the table row (or start a block).
        if c.is_control() || c.is_whitespace() {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
            continue;
        }
        last_space = false;
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // Markdown punctuation that can start emphasis, code, links, strikethrough,
            // or split a table cell: backslash-escaped (CommonMark escapes any ASCII punctuation).
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' | '!' | '#' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out.trim().to_string()
}

/// An http(s) URL as a Markdown autolink when it is plain enough to be one safely; anything
/// else as escaped text.
pub(crate) fn url_or_text(raw: &str, max: usize) -> String {
    let value = raw.trim();
    let plain = (value.starts_with("https://") || value.starts_with("http://"))
        && value.len() <= 2048
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c));
    if plain {
        format!("<{value}>")
    } else {
        text(raw, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_and_markdown_show_as_text() {
        assert_eq!(
            text("<img src=x onerror=alert(1)>", 100),
            "&lt;img src=x onerror=alert(1)&gt;"
        );
        assert_eq!(
            text("[click](https://evil) **now** `x` ~~y~~ a|b", 100),
            "\\[click\\](https://evil) \\*\\*now\\*\\* \\`x\\` \\~\\~y\\~\\~ a\\|b"
        );
        assert_eq!(text("a & b", 100), "a &amp; b");
    }

    #[test]
    fn stays_on_one_line_and_within_its_length() {
        assert_eq!(
            text("line one\r\n\n- line two\t", 100),
            "line one - line two"
        );
        let long = text(&"x".repeat(600), 500);
        assert_eq!(long.chars().count(), 501);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn only_plain_urls_become_links() {
        assert_eq!(
            url_or_text("https://api.example.com/prod", 100),
            "<https://api.example.com/prod>"
        );
        // A pipe would split the table cell; a space or `>` would end the autolink.
        assert_eq!(url_or_text("https://x/a|b", 100), "https://x/a\\|b");
        assert_eq!(url_or_text("https://x/>y", 100), "https://x/&gt;y");
        assert_eq!(
            url_or_text("javascript:alert(1)", 100),
            "javascript:alert(1)"
        );
    }
}
