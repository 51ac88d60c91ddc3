//! Which HTML elements are hidden from a reader: attributes, inline styles and the page's own simple CSS rules.

use std::collections::{HashMap, HashSet};

/// Hidden by the author: `hidden`, `aria-hidden="true"`, a navigation
/// landmark, or styling that a reader would not see (inline, or a class or
/// id that a `<style>` rule of the page hides). Text hidden from readers is
/// a classic way to feed instructions to a model, so it is never indexed.
pub(super) fn html_hidden(
    node: ego_tree::NodeRef<'_, scraper::Node>,
    hidden: &HiddenSelectors,
) -> bool {
    let Some(element) = node.value().as_element() else {
        return false;
    };
    if element.attr("hidden").is_some()
        || element.attr("aria-hidden") == Some("true")
        || element.attr("role") == Some("navigation")
    {
        return true;
    }
    let by_style = element.attr("style").map_or(Hiding::Shown, style_hiding);
    let by_id = element
        .id()
        .and_then(|id| hidden.ids.get(id).copied())
        .unwrap_or(Hiding::Shown);
    let by_class = element
        .classes()
        .filter_map(|class| hidden.classes.get(class).copied())
        .fold(Hiding::Shown, Hiding::or);
    match by_style.or(by_id).or(by_class) {
        Hiding::Shown => false,
        Hiding::Hidden => true,
        // Inherited properties: a descendant that sets its own shows again.
        Hiding::UnlessOverridden(property) => !node.descendants().skip(1).any(|d| {
            d.value()
                .as_element()
                .and_then(|e| e.attr("style"))
                .is_some_and(|style| style.to_ascii_lowercase().contains(property))
        }),
    }
}

/// What a style does to an element's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hiding {
    Shown,
    /// Gone with its whole subtree (`display:none`, `opacity:0`, clipped…).
    Hidden,
    /// Hidden through an inherited property (`font-size:0`,
    /// `visibility:hidden`, `color`): descendants may set their own.
    UnlessOverridden(&'static str),
}

impl Hiding {
    pub(super) fn or(self, other: Hiding) -> Hiding {
        match (self, other) {
            (Hiding::Hidden, _) | (_, Hiding::Hidden) => Hiding::Hidden,
            (Hiding::Shown, other) => other,
            (soft, _) => soft,
        }
    }
}

/// Classes and ids that the page's own stylesheet hides.
#[derive(Default)]
pub(super) struct HiddenSelectors {
    classes: HashMap<String, Hiding>,
    ids: HashMap<String, Hiding>,
}

impl HiddenSelectors {
    /// Reads the top-level rules of `<style>` text: a simple selector
    /// (`.name`, `#name`, `tag.name`, `tag#name`) whose declarations hide
    /// makes that class or id hidden, unless another rule mentioning it
    /// shows it (`.tab.active { display: block }`). Rules inside at-rules
    /// (`@media print`) apply only sometimes and are ignored, as is
    /// anything fancier.
    pub(super) fn add_stylesheet(&mut self, css: &str) {
        let css = strip_css_comments(css);
        let mut shown: HashSet<String> = HashSet::new();
        let mut depth = 0usize;
        let mut prelude_start = 0;
        let mut block_start = 0;
        let mut prelude = "";
        for (i, c) in css.char_indices() {
            match c {
                '{' => {
                    if depth == 0 {
                        prelude = &css[prelude_start..i];
                        block_start = i + 1;
                    }
                    depth += 1;
                }
                '}' if depth > 0 => {
                    depth -= 1;
                    if depth == 0 {
                        if !prelude.trim_start().starts_with('@') {
                            self.add_rule(prelude, &css[block_start..i], &mut shown);
                        }
                        prelude_start = i + 1;
                    }
                }
                ';' if depth == 0 => prelude_start = i + 1,
                _ => {}
            }
        }
        for name in shown {
            self.classes.remove(&name);
            self.ids.remove(&name);
        }
    }

    pub(super) fn add_rule(
        &mut self,
        selectors: &str,
        declarations: &str,
        shown: &mut HashSet<String>,
    ) {
        let hiding = style_hiding(declarations);
        let shows = hiding == Hiding::Shown && style_shows(declarations);
        let simple = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        };
        for selector in selectors.split(',') {
            let selector = selector.trim();
            if shows {
                // Every class and id this selector names, in any position.
                for part in selector.split(['.', '#']).skip(1) {
                    let name: String = part
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
                        .collect();
                    shown.insert(name);
                }
                continue;
            }
            if hiding == Hiding::Shown {
                continue;
            }
            if let Some((_, class)) = selector
                .split_once('.')
                .filter(|(tag, class)| (tag.is_empty() || simple(tag)) && simple(class))
            {
                self.classes.insert(class.to_owned(), hiding);
            } else if let Some((_, id)) = selector
                .split_once('#')
                .filter(|(tag, id)| (tag.is_empty() || simple(tag)) && simple(id))
            {
                self.ids.insert(id.to_owned(), hiding);
            }
        }
    }
}

pub(super) fn strip_css_comments(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find("*/") {
            Some(end) => rest = &rest[start + 2 + end + 2..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// CSS declarations as lower-case `property → value`, without whitespace or
/// `!important`.
pub(super) fn css_properties(declarations: &str) -> HashMap<String, String> {
    let compact: String = declarations
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    compact
        .split(';')
        .filter_map(|declaration| declaration.split_once(':'))
        .map(|(name, value)| {
            (
                name.to_owned(),
                value.trim_end_matches("!important").to_owned(),
            )
        })
        .collect()
}

/// Whether declarations make an element shown again (`display` other than
/// `none`, `visibility:visible`, a non-zero `opacity`).
pub(super) fn style_shows(declarations: &str) -> bool {
    let properties = css_properties(declarations);
    properties.get("display").is_some_and(|v| v != "none")
        || properties.get("visibility").is_some_and(|v| v == "visible")
        || properties
            .get("opacity")
            .is_some_and(|v| v.parse::<f64>().is_ok_and(|o| o > 0.0))
}

/// What CSS declarations do to an element's text: nothing, or hide it by
/// not displaying it, zero opacity, clipping, zero size, pushing it
/// off-screen, or (inherited, so descendants may undo it) a zero font size,
/// `visibility:hidden`, a transparent colour or the colour of its own
/// background.
pub(super) fn style_hiding(declarations: &str) -> Hiding {
    let properties = css_properties(declarations);
    let get = |name: &str| properties.get(name).map(String::as_str);
    let number = |value: &str| -> Option<f64> {
        let end = value
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
            .unwrap_or(value.len());
        value[..end].parse().ok()
    };
    let is_zero = |value: &str| number(value) == Some(0.0);
    let far_off = |value: &str| {
        number(value).is_some_and(|n| {
            let unit = value.trim_start_matches(|c: char| c.is_ascii_digit() || "+-.".contains(c));
            let px = if unit.starts_with("em") || unit.starts_with("rem") {
                n * 16.0
            } else {
                n
            };
            px <= -500.0
        })
    };
    let clipped_overflow = get("overflow").is_some_and(|v| v == "hidden" || v == "clip");
    let gone = get("display") == Some("none")
        || get("opacity").is_some_and(is_zero)
        || get("transform").is_some_and(|v| v.starts_with("scale(0)") || v.starts_with("scale(0,"))
        || get("clip")
            .is_some_and(|v| v.starts_with("rect(0") || v.starts_with("rect(1px,1px,1px,1px"))
        || get("clip-path")
            .is_some_and(|v| v.starts_with("inset(50%") || v.starts_with("inset(100%"))
        || [
            "left",
            "top",
            "right",
            "text-indent",
            "margin-left",
            "margin-top",
        ]
        .iter()
        .any(|p| get(p).is_some_and(far_off))
        || (clipped_overflow
            && ["width", "height", "max-width", "max-height"]
                .iter()
                .any(|p| get(p).is_some_and(is_zero)));
    if gone {
        Hiding::Hidden
    } else if get("font-size").is_some_and(is_zero) {
        Hiding::UnlessOverridden("font-size")
    } else if get("visibility").is_some_and(|v| v == "hidden" || v == "collapse") {
        Hiding::UnlessOverridden("visibility")
    } else if get("color") == Some("transparent")
        || get("color").is_some_and(|fg| get("background-color").or(get("background")) == Some(fg))
    {
        Hiding::UnlessOverridden("color")
    } else {
        Hiding::Shown
    }
}
