//! Slack's `mrkdwn` text: escaping untrusted strings, building our own links and mentions, and
//! cutting text to Slack's limits without breaking what was escaped.
//!
//! Slack interprets `<...>` as links and mentions (`<!channel>`, `<https://x|label>`), and `&`
//! starts an entity. A commit message or a CloudFormation reason is written by someone else, so
//! every such string goes through [`escape`] before it is placed in a message; only the links
//! and mentions this module builds are added afterwards, unescaped.

/// Escapes the three characters Slack's mrkdwn gives a meaning to (and only those, as Slack's
/// documentation says: escaping more would show up literally).
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// Text for a `plain_text` object (headers): Slack does not parse links or mentions there, but
/// it does not decode entities either, so the three special characters are dropped instead of
/// escaped (headers only carry names, where they have no business anyway).
pub(crate) fn plain(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '&' | '<' | '>'))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A link we build: `<url|label>`. The label is escaped; characters that would end the link
/// early (`|`, `>`, `<`, spaces) are percent-encoded in the URL and `&` becomes `&amp;` as
/// Slack requires.
pub(crate) fn link(url: &str, label: &str) -> String {
    let mut safe_url = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '&' => safe_url.push_str("&amp;"),
            '<' => safe_url.push_str("%3C"),
            '>' => safe_url.push_str("%3E"),
            '|' => safe_url.push_str("%7C"),
            ' ' => safe_url.push_str("%20"),
            c if c.is_control() => {}
            c => safe_url.push(c),
        }
    }
    // An empty label would make Slack show the raw URL; a label with `|` is fine once escaped
    // (the first `|` separates), but `>` would end the link: escape handles it.
    format!("<{safe_url}|{}>", escape(label))
}

/// Percent-encodes a URL query/fragment component (RFC 3986 unreserved characters stay).
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The mention for `slack-mention-on-failure`, written the way people write it: `@here`,
/// `here`, `@channel`, a user ID (`U…`/`W…`), a user group ID (`S…`), or Slack's own syntax
/// (`<@U123>`, `<!subteam^S123>`). Anything else is shown as escaped text: a name Slack
/// cannot resolve would not notify anyone, and raw `<...>` from elsewhere must stay inert.
pub(crate) fn mention(input: &str) -> String {
    let t = input.trim();
    let bare = t.trim_start_matches('@');
    let is_id = |s: &str, first: &[char]| {
        s.len() >= 2
            && s.starts_with(first)
            && s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    };
    match bare {
        "here" => return "<!here>".into(),
        "channel" => return "<!channel>".into(),
        "everyone" => return "<!everyone>".into(),
        _ => {}
    }
    if is_id(bare, &['U', 'W']) {
        return format!("<@{bare}>");
    }
    if is_id(bare, &['S']) {
        return format!("<!subteam^{bare}>");
    }
    if let Some(inner) = t.strip_prefix('<').and_then(|r| r.strip_suffix('>')) {
        let valid = match inner {
            "!here" | "!channel" | "!everyone" => true,
            _ => {
                inner
                    .strip_prefix('@')
                    .is_some_and(|id| is_id(id, &['U', 'W']))
                    || inner
                        .strip_prefix("!subteam^")
                        .is_some_and(|id| is_id(id, &['S']))
            }
        };
        if valid {
            return t.to_string();
        }
    }
    escape(t)
}

/// Cuts `text` (already mrkdwn) to at most `max` characters, ending with `…` when cut. Never
/// leaves half an entity (`&am`) or half a link (`<https://x|lab`) behind: an unfinished one is
/// dropped whole, so a cut can neither break the message nor revive escaped text.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    // Unfinished entity: an '&' after the last ';'.
    if let Some(amp) = cut.rfind('&')
        && !cut[amp..].contains(';')
    {
        cut.truncate(amp);
    }
    // Unfinished link or mention: a '<' after the last '>'.
    if let Some(open) = cut.rfind('<')
        && !cut[open..].contains('>')
    {
        cut.truncate(open);
    }
    // Unbalanced code span would swallow the ellipsis into monospace: harmless, keep it simple.
    cut.push('…');
    cut
}

/// Cuts plain text to `max` characters (for `plain_text` objects).
pub(crate) fn truncate_plain(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// The first line of a commit message, for one-line display.
pub(crate) fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_markup_becomes_inert() {
        assert_eq!(
            escape("<!channel> see <https://evil|click> & co"),
            "&lt;!channel&gt; see &lt;https://evil|click&gt; &amp; co"
        );
        // Already-escaped text is escaped again: the user's literal "&amp;" stays literal.
        assert_eq!(escape("&amp;"), "&amp;amp;");
        assert_eq!(plain("app <!here> & x"), "app !here  x");
    }

    #[test]
    fn links_cannot_be_broken_out_of() {
        assert_eq!(
            link("https://x/a?b=1&c=2", "run <1>"),
            "<https://x/a?b=1&amp;c=2|run &lt;1&gt;>"
        );
        assert_eq!(
            link("https://x/a|b>c", "l"),
            "<https://x/a%7Cb%3Ec|l>",
            "a | or > in the URL must not end the link"
        );
    }

    #[test]
    fn mentions_are_normalised_and_unknown_ones_stay_inert() {
        assert_eq!(mention("@here"), "<!here>");
        assert_eq!(mention("channel"), "<!channel>");
        assert_eq!(mention("U012AB3CD"), "<@U012AB3CD>");
        assert_eq!(mention("@W0123"), "<@W0123>");
        assert_eq!(mention("S0614TZR7"), "<!subteam^S0614TZR7>");
        assert_eq!(mention("<@U012AB3CD>"), "<@U012AB3CD>");
        assert_eq!(mention("<!subteam^S1>"), "<!subteam^S1>");
        assert_eq!(mention("@oncall-team"), "@oncall-team");
        assert_eq!(mention("<https://evil|x>"), "&lt;https://evil|x&gt;");
    }

    #[test]
    fn truncation_never_leaves_half_an_entity_or_link() {
        let text = format!("{}&amp;", "a".repeat(8));
        let cut = truncate(&text, 11);
        assert_eq!(cut, "aaaaaaaa…");
        let text = format!("{}<https://x|y> tail", "a".repeat(5));
        assert_eq!(truncate(&text, 12), "aaaaa…");
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("ééééé", 3).chars().count(), 3);
        assert!(truncate(&"x".repeat(5000), 3000).chars().count() <= 3000);
    }

    #[test]
    fn url_components_are_percent_encoded() {
        assert_eq!(
            url_encode("arn:aws:cloudformation:eu-west-1:1:stack/app/ab-c"),
            "arn%3Aaws%3Acloudformation%3Aeu-west-1%3A1%3Astack%2Fapp%2Fab-c"
        );
    }
}
