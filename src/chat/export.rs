//! A conversation as Markdown: the branch shown, each answer's citations
//! turned into footnotes that hold the cited passage.

use app::wire::{ConversationView, Role, Source};

/// The conversation as a Markdown document.
pub fn to_markdown(conversation: &ConversationView) -> String {
    let mut out = format!("# {}\n", one_line(&conversation.title));
    let mut footnotes = Vec::new();
    for message in &conversation.messages {
        match message.role {
            Role::User => out.push_str("\n**You:**\n\n"),
            Role::Assistant => match &message.model {
                Some(model) => out.push_str(&format!("\n**Assistant** ({}):\n\n", one_line(model))),
                None => out.push_str("\n**Assistant:**\n\n"),
            },
        }
        let text = match message.role {
            Role::User => message.content.clone(),
            Role::Assistant => {
                let first = footnotes.len() + 1;
                let cited: Vec<&Source> = message.sources.iter().filter(|s| s.cited).collect();
                let label = |n: u32| {
                    cited
                        .iter()
                        .position(|s| s.n == n)
                        .map(|i| format!("[^{}]", first + i))
                };
                let text = footnote_markers(&message.content, label);
                footnotes.extend(cited.iter().map(|s| footnote(s)));
                text
            }
        };
        out.push_str(text.trim_end());
        out.push('\n');
    }
    if !footnotes.is_empty() {
        out.push('\n');
        for (i, text) in footnotes.iter().enumerate() {
            out.push_str(&format!("[^{}]: {text}\n", i + 1));
        }
    }
    out
}

/// A footnote's text: where the passage is, and the passage on one line.
fn footnote(source: &Source) -> String {
    format!(
        "{}: “{}”",
        one_line(&source.location()),
        one_line(&source.text)
    )
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Replaces citation markers (`[1]`, `[1, 2]`, `[2-3]`) with footnote
/// references; numbers `label` doesn't know stay as they were.
fn footnote_markers(text: &str, label: impl Fn(u32) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let replaced = after.find(']').and_then(|close| {
            let inside = &after[..close];
            let numbers = marker_numbers(inside)?;
            let labels: Option<Vec<String>> = numbers.into_iter().map(&label).collect();
            Some((labels?.concat(), close))
        });
        match replaced {
            Some((labels, close)) => {
                out.push_str(&labels);
                rest = &after[close + 1..];
            }
            None => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The numbers of a citation marker's inside, or `None` if it isn't one.
fn marker_numbers(inside: &str) -> Option<Vec<u32>> {
    if inside.is_empty() || inside.len() > 20 {
        return None;
    }
    let mut numbers = Vec::new();
    for part in inside.split([',', ';']) {
        let part = part.trim();
        match part.split_once(['-', '–']) {
            Some((a, b)) => {
                let (a, b) = (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?);
                if a > b || b - a >= 20 {
                    return None;
                }
                numbers.extend(a..=b);
            }
            None => numbers.push(part.parse().ok()?),
        }
    }
    Some(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::wire::{MessageStatus, MessageView};

    fn message(role: Role, content: &str, sources: Vec<Source>) -> MessageView {
        MessageView {
            id: "m".into(),
            role,
            content: content.into(),
            status: MessageStatus::Complete,
            error: None,
            model: (role == Role::Assistant).then(|| "qwen".into()),
            completion_tokens: None,
            ttft_ms: None,
            total_ms: None,
            sources,
            rating: None,
            notice: None,
            searched_for: None,
            versions: None,
        }
    }

    fn source(n: u32, cited: bool, text: &str) -> Source {
        Source {
            n,
            collection: None,
            document_id: "d".into(),
            document_name: "guide.pdf".into(),
            page: Some(n),
            heading: None,
            chunk_index: 0,
            text: text.into(),
            score: 1.0,
            cited,
            highlights: Vec::new(),
        }
    }

    #[test]
    fn citations_become_footnotes_numbered_across_answers() {
        let view = ConversationView {
            scope: None,
            id: "c".into(),
            title: "Ovens\nand bread".into(),
            messages: vec![
                message(Role::User, "How hot? [not a citation]", vec![]),
                message(
                    Role::Assistant,
                    "Hot [1]. Also [2-3] and [9].",
                    vec![
                        source(1, true, "Bake at\n220 °C."),
                        source(2, true, "Steam first."),
                        source(3, true, "Then dry."),
                        source(4, false, "Unrelated."),
                    ],
                ),
                message(Role::User, "And bread?", vec![]),
                message(
                    Role::Assistant,
                    "Rise [1].",
                    vec![source(1, true, "Let it rise.")],
                ),
            ],
        };
        let md = to_markdown(&view);
        assert!(md.starts_with("# Ovens and bread\n"));
        assert!(md.contains("How hot? [not a citation]"));
        assert!(md.contains("Hot [^1]. Also [^2][^3] and [9]."));
        assert!(md.contains("Rise [^4]."));
        assert!(md.contains("[^1]: guide.pdf, p. 1: “Bake at 220 °C.”"));
        assert!(md.contains("[^4]: guide.pdf, p. 1: “Let it rise.”"));
        assert!(!md.contains("Unrelated"));
        assert!(md.contains("**Assistant** (qwen):"));
    }
}
