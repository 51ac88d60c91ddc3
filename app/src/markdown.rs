//! Markdown → safe HTML for model output (untrusted text).
//!
//! Two layers: raw HTML in the markdown is turned into escaped text before
//! rendering, then ammonia sanitizes the result against a small allowlist
//! (no scripts, no event handlers, no `javascript:` or `data:` URLs).

use pulldown_cmark::{CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd};
use std::collections::HashSet;
use std::sync::OnceLock;

/// Renders untrusted markdown to HTML that is safe to put into `inner_html`.
pub fn render_markdown(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_SMART_PUNCTUATION;
    let events = Parser::new_ext(markdown, options).map(|event| match event {
        // Raw HTML from the model is shown as text, never interpreted.
        Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
        Event::Start(Tag::CodeBlock(kind)) => {
            let lang = match &kind {
                CodeBlockKind::Fenced(info) => info.split_whitespace().next().unwrap_or(""),
                CodeBlockKind::Indented => "",
            };
            let lang = escape_html(lang);
            let class = if lang.is_empty() {
                String::new()
            } else {
                format!(" class=\"language-{lang}\"")
            };
            Event::Html(CowStr::from(format!(
                "<div class=\"code-block\"><div class=\"code-head\"><span class=\"code-lang\">{lang}</span>\
                 <button type=\"button\" class=\"copy-code\" aria-label=\"Copy code\">Copy</button></div>\
                 <pre><code{class}>"
            )))
        }
        Event::End(TagEnd::CodeBlock) => Event::Html(CowStr::from("</code></pre></div>")),
        other => other,
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    sanitizer().clean(&html).to_string()
}

fn sanitizer() -> &'static ammonia::Builder<'static> {
    static SANITIZER: OnceLock<ammonia::Builder<'static>> = OnceLock::new();
    SANITIZER.get_or_init(|| {
        let mut builder = ammonia::Builder::default();
        builder
            .add_tags(["button"])
            .rm_tags(["img"])
            .add_tag_attributes("button", ["type", "class", "aria-label"])
            .add_tag_attributes("div", ["class"])
            .add_tag_attributes("span", ["class"])
            .add_tag_attributes("code", ["class"])
            .url_schemes(HashSet::from(["http", "https", "mailto"]))
            .link_rel(Some("noopener noreferrer nofollow"));
        builder
    })
}

/// Text as HTML text or attribute value.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape_html("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn renders_common_markdown() {
        let html = render_markdown(
            "# Title\n\n- a\n- b\n\n| x | y |\n|---|---|\n| 1 | 2 |\n\n**bold** `code`",
        );
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(html.contains("<li>a</li>"), "{html}");
        assert!(html.contains("<table>"), "{html}");
        assert!(html.contains("<td>1</td>"), "{html}");
        assert!(html.contains("<strong>bold</strong>"), "{html}");
        assert!(html.contains("<code>code</code>"), "{html}");
    }

    #[test]
    fn code_blocks_get_a_copy_button_and_language() {
        let html = render_markdown("```rust\nfn main() { let a = 1 < 2; }\n```");
        assert!(html.contains("class=\"copy-code\""), "{html}");
        assert!(html.contains("class=\"language-rust\""), "{html}");
        assert!(html.contains("1 &lt; 2"), "{html}");
    }

    #[test]
    fn raw_html_is_escaped() {
        let html = render_markdown("hi <img src=x onerror=alert(1)> <script>alert(2)</script>\n\n<div onclick=\"x()\">d</div>");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<div onclick"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("&lt;img"), "{html}");
    }

    #[test]
    fn dangerous_links_lose_their_target() {
        for md in [
            "[x](javascript:alert(1))",
            "[x](JaVaScRiPt:alert(1))",
            "[x](data:text/html,<script>alert(1)</script>)",
            "<javascript:alert(1)>",
            "[x](vbscript:msgbox)",
        ] {
            let html = render_markdown(md);
            let lower = html.to_ascii_lowercase();
            assert!(!lower.contains("href=\"javascript"), "{md} → {html}");
            assert!(!lower.contains("href=\"data"), "{md} → {html}");
            assert!(!lower.contains("href=\"vbscript"), "{md} → {html}");
        }
        let html = render_markdown("[ok](https://example.com)");
        assert!(html.contains("href=\"https://example.com\""), "{html}");
        assert!(
            html.contains("rel=\"noopener noreferrer nofollow\""),
            "{html}"
        );
    }

    #[test]
    fn language_tag_cannot_break_out() {
        let html = render_markdown("```\"><script>alert(1)</script>\nx\n```");
        assert!(!html.contains("<script"), "{html}");
    }

    #[test]
    fn images_do_not_load() {
        let html = render_markdown("![t](https://tracker.example/p.png)");
        assert!(!html.contains("<img"), "{html}");
    }
}
