//! Text helpers shared by channels: escaping and length limits in the provider's unit.

/// Escapes `&`, `<`, `>` (and quotes) for HTML text and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escapes only `&`, `<`, `>`: HTML text content for parsers with a small entity set (Telegram's
/// HTML mode). Not for attribute values.
pub fn escape_html_text(text: &str) -> String {
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

/// UTF-16 code units of `c` once escaped by [`escape_html_text`].
pub fn escaped_text_utf16_units(c: char) -> usize {
    match c {
        '&' => 5,       // &amp;
        '<' | '>' => 4, // &lt; &gt;
        _ => c.len_utf16(),
    }
}

/// Length of `text` in UTF-16 code units (what Telegram and JavaScript count).
pub fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// Total cost of `text` under a per-character cost function.
pub fn cost_of(text: &str, cost: impl Fn(char) -> usize) -> usize {
    text.chars().map(cost).sum()
}

/// Where `text` may be cut so that the prefix costs at most a budget. Both are byte offsets on
/// `char` boundaries, so a cut never splits a code point (and so never a surrogate pair).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// End of the longest prefix that ends right after a `'\n'` and fits; 0 when none does.
    pub at_line: usize,
    /// End of the longest prefix that fits, cut at any character.
    pub at_char: usize,
}

/// Finds the cut points of `text` for `budget` (see [`Cut`]).
pub fn cut_within(text: &str, budget: usize, cost: impl Fn(char) -> usize) -> Cut {
    let mut used = 0;
    let mut cut = Cut {
        at_line: 0,
        at_char: 0,
    };
    for (i, c) in text.char_indices() {
        used += cost(c);
        if used > budget {
            return cut;
        }
        cut.at_char = i + c.len_utf8();
        if c == '\n' {
            cut.at_line = cut.at_char;
        }
    }
    cut
}

/// The first line of `text`, including its `'\n'` if it has one.
pub fn first_line(text: &str) -> &str {
    match text.find('\n') {
        Some(i) => &text[..=i],
        None => text,
    }
}

/// Splits plain `text` into chunks of at most `max` cost each, cutting after a newline where a
/// chunk can end on one and at a character boundary only when a single line is longer than
/// `max`. Concatenating the chunks gives back `text`. `max` must be at least the cost of any
/// single character. Escape each chunk after splitting, with `cost` giving the escaped size.
pub fn split_chunks(text: &str, max: usize, cost: impl Fn(char) -> usize + Copy) -> Vec<&str> {
    let mut chunks = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let cut = cut_within(rest, max, cost);
        let end = if cut.at_char == rest.len() {
            rest.len()
        } else if cut.at_line > 0 {
            cut.at_line
        } else {
            cut.at_char
        };
        assert!(end > 0, "max ({max}) is smaller than one character's cost");
        chunks.push(&rest[..end]);
        rest = &rest[end..];
    }
    chunks
}

/// The ellipsis a truncated text ends with.
pub const ELLIPSIS: char = '…';

/// The longest prefix of `text`, cut on a character boundary and followed by "…", that passes
/// `fits`; "" when not even "…" alone does. `fits` must be monotonic in the prefix length (a
/// shorter prefix never fits worse), which holds for "the serialized request is at most N bytes".
/// Callers cut plain text *before* escaping it, so an escape sequence is never split.
pub fn fit_with_ellipsis(text: &str, fits: impl Fn(&str) -> bool) -> String {
    let starts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let candidate = |n: usize| {
        let end = starts.get(n).copied().unwrap_or(text.len());
        format!("{}{ELLIPSIS}", &text[..end])
    };
    if !fits(&candidate(0)) {
        return String::new();
    }
    // Binary search over the number of characters kept.
    let (mut lo, mut hi) = (0usize, starts.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits(&candidate(mid)) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    candidate(lo)
}

/// What a hidden value (a token, a secret) is replaced with in messages.
pub const REDACTED: &str = "<redacted>";

/// `text` with every non-empty `hidden` value replaced by `replacement`.
pub fn redact<S: AsRef<str>>(mut text: String, hidden: &[S], replacement: &str) -> String {
    for value in hidden.iter().map(AsRef::as_ref).filter(|v| !v.is_empty()) {
        if text.contains(value) {
            text = text.replace(value, replacement);
        }
    }
    text
}

/// At most 200 characters of a reply body, one line, for error messages.
pub fn excerpt(body: &[u8]) -> String {
    const MAX_CHARS: usize = 200;
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .chars()
        .take(MAX_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > MAX_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_attributes() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            escape_html_text(r#"That's "it" & <b>"#),
            r#"That's "it" &amp; &lt;b&gt;"#
        );
    }

    #[test]
    fn counts_utf16_units() {
        assert_eq!(utf16_len(""), 0);
        assert_eq!(utf16_len("abc"), 3);
        assert_eq!(utf16_len("é"), 1); // 2 UTF-8 bytes, 1 unit
        assert_eq!(utf16_len("通知"), 2); // 6 bytes, 2 units
        assert_eq!(utf16_len("😀"), 2); // 4 bytes, a surrogate pair
        assert_eq!(utf16_len("a😀通"), 4);
    }

    #[test]
    fn escaped_cost_matches_escaping() {
        for c in ['&', '<', '>', '"', 'a', 'é', '通', '😀'] {
            let s = c.to_string();
            assert_eq!(
                escaped_text_utf16_units(c),
                utf16_len(&escape_html_text(&s)),
                "{c}"
            );
        }
    }

    #[test]
    fn cut_prefers_reporting_line_ends() {
        // "ab\ncd\nef": newlines at byte 2 and 5.
        let c = cut_within("ab\ncd\nef", 7, utf16_len_char);
        assert_eq!(
            c,
            Cut {
                at_line: 6,
                at_char: 7
            }
        );
        let c = cut_within("ab\ncd\nef", 5, utf16_len_char);
        assert_eq!(
            c,
            Cut {
                at_line: 3,
                at_char: 5
            }
        );
        let c = cut_within("abcdef", 4, utf16_len_char);
        assert_eq!(
            c,
            Cut {
                at_line: 0,
                at_char: 4
            }
        );
        assert_eq!(
            cut_within("", 4, utf16_len_char),
            Cut {
                at_line: 0,
                at_char: 0
            }
        );
    }

    fn utf16_len_char(c: char) -> usize {
        c.len_utf16()
    }

    #[test]
    fn cut_never_splits_a_surrogate_pair() {
        // Each emoji is 2 units; a budget of 5 fits two of them (4 units), not two and a half.
        let c = cut_within("😀😀😀", 5, utf16_len_char);
        assert_eq!(c.at_char, 8); // two emoji, 4 bytes each
    }

    #[test]
    fn splits_on_line_boundaries() {
        let text = "first line\nsecond line\nthird";
        // 11 + 12 + 5 units; a limit of 24 fits the first two lines, not the third.
        assert_eq!(
            split_chunks(text, 24, utf16_len_char),
            vec!["first line\nsecond line\n", "third"]
        );
        // A limit of 15 fits one line at a time.
        assert_eq!(
            split_chunks(text, 15, utf16_len_char),
            vec!["first line\n", "second line\n", "third"]
        );
        assert_eq!(split_chunks(text, 100, utf16_len_char), vec![text]);
        assert!(split_chunks("", 10, utf16_len_char).is_empty());
    }

    #[test]
    fn falls_back_to_characters_for_an_overlong_line() {
        assert_eq!(
            split_chunks("abcdefgh\nij", 3, utf16_len_char),
            vec!["abc", "def", "gh\n", "ij"]
        );
        // 5 emoji = 10 units, limit 4 → 2 + 2 + 1 emoji.
        assert_eq!(
            split_chunks("😀😀😀😀😀", 4, utf16_len_char),
            vec!["😀😀", "😀😀", "😀"]
        );
        // Limit 3 with 2-unit characters: one per chunk, never half of one.
        assert_eq!(split_chunks("😀😀", 3, utf16_len_char), vec!["😀", "😀"]);
    }

    #[test]
    fn fits_the_longest_prefix_with_an_ellipsis() {
        // "…" is 3 bytes: a budget of 3 + 4 bytes keeps one emoji (4 bytes), not two.
        let fits = |budget: usize| move |s: &str| s.len() <= budget;
        assert_eq!(fit_with_ellipsis("😀😀", fits(7)), "😀…");
        assert_eq!(fit_with_ellipsis("😀😀", fits(6)), "…");
        assert_eq!(fit_with_ellipsis("😀😀", fits(2)), "");
        // '通' is 3 bytes: 3 + 3 + 3 = 9 keeps two of them.
        assert_eq!(fit_with_ellipsis("通通通", fits(9)), "通通…");
    }

    #[test]
    fn redacts_every_hidden_value() {
        assert_eq!(
            redact("a tok b sec tok".into(), &["tok", "", "sec"], REDACTED),
            "a <redacted> b <redacted> <redacted>"
        );
        assert_eq!(redact("x".into(), &[""], "?"), "x");
    }

    #[test]
    fn excerpt_is_one_bounded_line() {
        assert_eq!(excerpt(b"a\r\nb\tc"), "a  b c");
        let long = "é".repeat(201);
        assert_eq!(excerpt(long.as_bytes()), format!("{}…", "é".repeat(200)));
        assert_eq!(excerpt(&[0xff, b'a']), "\u{fffd}a");
    }

    #[test]
    fn budgets_for_escaping_so_no_entity_is_split() {
        // "a&b" escapes to "a&amp;b" (7 units). With a limit of 5 the '&' cannot join 'a'
        // (1 + 5 = 6), so the cut falls before it and the entity stays whole.
        let chunks = split_chunks("a&b", 5, escaped_text_utf16_units);
        assert_eq!(chunks, vec!["a", "&", "b"]);
        let escaped: Vec<String> = chunks.iter().map(|c| escape_html_text(c)).collect();
        assert_eq!(escaped, vec!["a", "&amp;", "b"]);
        assert_eq!(
            split_chunks("<<<<", 8, escaped_text_utf16_units),
            vec!["<<", "<<"]
        );
    }
}
