//! Prompt assembly: system prompt, as much recent history as fits, the
//! numbered sources that fit the context budget, then the question.

use crate::ingest::chunk::TokenSpans;
use crate::llm::{PromptMessage, PromptRole};
use crate::store::HistoryMessage;
use app::wire::{Role, Source};

/// Added to the system prompt when the question comes with sources. Short and
/// concrete: small local models follow a few plain rules better than many.
/// Bump when the system prompt, grounding rules or prompt layout change:
/// cached answers made with another template are not reused.
pub const TEMPLATE_VERSION: u32 = 1;

const GROUNDING_RULES: &str = "You answer questions about the user's documents. \
Use only the numbered sources given with the question. After each sentence that \
uses a source, cite it with its number in square brackets, like [1] or [2][3]. \
If the sources do not contain the answer, say that the documents do not say.";

/// Keeps the best-ranked sources whose text fits `budget_tokens` (they stay
/// numbered 1..n, since only the tail is dropped).
pub fn fit_sources(
    sources: Vec<Source>,
    tokens: &dyn TokenSpans,
    budget_tokens: usize,
) -> Vec<Source> {
    let mut used = 0;
    let mut kept = Vec::new();
    for source in sources {
        let cost = tokens.token_spans(&source.text).len() + 16;
        if used + cost > budget_tokens && !kept.is_empty() {
            break;
        }
        used += cost;
        kept.push(source);
    }
    kept
}

/// The user turn the model sees: sources first, then the question.
fn grounded_question(sources: &[Source], question: &str) -> String {
    let mut text = String::from("Sources:\n\n");
    for source in sources {
        text.push_str(&format!(
            "[{}] {}\n{}\n\n",
            source.n,
            source.location(),
            source.text.trim()
        ));
    }
    text.push_str("Question: ");
    text.push_str(question);
    text
}

pub fn build_prompt(
    system_prompt: &str,
    history: &[HistoryMessage],
    history_chars: usize,
    sources: &[Source],
    question: &str,
) -> Vec<PromptMessage> {
    let mut budget = history_chars;
    let mut recent = Vec::new();
    for message in history.iter().rev() {
        let cost = message.content.chars().count();
        if cost > budget {
            break;
        }
        budget -= cost;
        recent.push(PromptMessage {
            role: match message.role {
                Role::User => PromptRole::User,
                Role::Assistant => PromptRole::Assistant,
            },
            content: message.content.clone(),
        });
    }
    // Chat templates expect turns to start with the user.
    while recent
        .last()
        .is_some_and(|m| m.role == PromptRole::Assistant)
    {
        recent.pop();
    }
    recent.reverse();
    let system = if sources.is_empty() {
        system_prompt.to_string()
    } else {
        format!("{system_prompt}\n\n{GROUNDING_RULES}")
    };
    let mut messages = vec![PromptMessage {
        role: PromptRole::System,
        content: system,
    }];
    messages.extend(recent);
    messages.push(PromptMessage {
        role: PromptRole::User,
        content: if sources.is_empty() {
            question.to_string()
        } else {
            grounded_question(sources, question)
        },
    });
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Words;
    impl TokenSpans for Words {
        fn token_spans(&self, text: &str) -> Vec<std::ops::Range<usize>> {
            let mut spans = Vec::new();
            let mut start = None;
            for (i, c) in text.char_indices() {
                match (c.is_whitespace(), start) {
                    (false, None) => start = Some(i),
                    (true, Some(s)) => {
                        spans.push(s..i);
                        start = None;
                    }
                    _ => {}
                }
            }
            if let Some(s) = start {
                spans.push(s..text.len());
            }
            spans
        }
    }

    fn source(n: u32, words: usize) -> Source {
        Source {
            n,
            document_id: "d".into(),
            document_name: "report.pdf".into(),
            page: Some(n),
            heading: None,
            chunk_index: n,
            text: "word ".repeat(words),
            score: 1.0,
            cited: false,
            highlights: Vec::new(),
        }
    }

    #[test]
    fn sources_fit_the_budget_in_rank_order() {
        let kept = fit_sources(
            vec![source(1, 100), source(2, 100), source(3, 100)],
            &Words,
            240,
        );
        assert_eq!(kept.iter().map(|s| s.n).collect::<Vec<_>>(), vec![1, 2]);
        // The best source is kept even when it alone is over budget.
        let kept = fit_sources(vec![source(1, 500)], &Words, 100);
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn sources_are_numbered_in_the_question() {
        let messages = build_prompt(
            "Be helpful.",
            &[],
            1000,
            &[source(1, 3), source(2, 3)],
            "What?",
        );
        assert_eq!(messages.len(), 2);
        assert!(messages[0].content.contains("square brackets"));
        let user = &messages[1].content;
        assert!(user.starts_with("Sources:"));
        assert!(user.contains("[1] report.pdf, p. 1\nword word word"));
        assert!(user.contains("[2] report.pdf, p. 2"));
        assert!(user.ends_with("Question: What?"));
    }

    #[test]
    fn without_sources_the_question_is_plain() {
        let history = vec![
            HistoryMessage {
                role: Role::Assistant,
                content: "orphan".into(),
            },
            HistoryMessage {
                role: Role::User,
                content: "hi".into(),
            },
            HistoryMessage {
                role: Role::Assistant,
                content: "hello".into(),
            },
        ];
        let messages = build_prompt("Be helpful.", &history, 1000, &[], "What?");
        let contents: Vec<_> = messages.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(contents, vec!["Be helpful.", "hi", "hello", "What?"]);
    }
}
