//! Model output rendered to HTML: whatever the markdown, no tag or
//! attribute that runs code, loads from elsewhere or restyles the page
//! survives (text that merely looks like one is escaped).
#![no_main]

use libfuzzer_sys::fuzz_target;

const TAGS: &[&str] = &["script", "img", "iframe", "object", "embed", "style", "svg", "math", "form", "input", "link", "meta", "base"];
const SCHEMES: &[&str] = &["javascript:", "data:", "vbscript:", "file:"];

fuzz_target!(|markdown: &str| {
    let html = app::markdown::render_markdown(markdown).to_ascii_lowercase();
    // Outside tags `<` is always escaped, so every `<` opens a real tag.
    for tag in html.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or(tag);
        let name = tag.trim_start_matches('/').split(|c: char| c.is_whitespace() || c == '/').next().unwrap_or("");
        assert!(!TAGS.contains(&name), "<{tag}> in {html}");
        for attribute in tag.split_whitespace().skip(1) {
            let (key, value) = attribute.split_once('=').unwrap_or((attribute, ""));
            assert!(!key.starts_with("on") && key != "style" && key != "srcdoc", "{key} in <{tag}>");
            let value = value.trim_matches(|c| c == '"' || c == '\'');
            assert!(!SCHEMES.iter().any(|s| value.starts_with(s)), "{value} in <{tag}>");
        }
    }
});
