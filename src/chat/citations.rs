//! Citations: which sources a finished answer cites (`[n]`), and which
//! sentences of each cited passage support it, for highlighting.

use app::wire::{Source, TextSpan};
use std::collections::{BTreeSet, HashSet};

/// The source numbers cited as `[1]`, `[2, 3]`, `[1][4]`, `[2-3]`.
pub fn cited_numbers(answer: &str) -> BTreeSet<u32> {
    let mut cited = BTreeSet::new();
    let mut rest = answer;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find(']') else { break };
        let inside = &rest[..close];
        if inside.len() <= 20 {
            for part in inside.split([',', ';']) {
                let part = part.trim();
                if let Some((a, b)) = part.split_once(['-', '–']) {
                    if let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
                        if a <= b && b - a < 20 {
                            cited.extend(a..=b);
                        }
                    }
                } else if let Ok(n) = part.parse::<u32>() {
                    cited.insert(n);
                }
            }
        }
        rest = &rest[close..];
    }
    cited
}

/// Marks cited sources and highlights their supporting sentences. When the
/// answer cites nothing, every source gets highlights against the whole answer
/// (so a reader can still check it), but none is marked cited.
pub fn annotate(answer: &str, sources: &mut [Source]) {
    let cited = cited_numbers(answer);
    let answer_sentences = sentences(answer);
    for source in sources.iter_mut() {
        source.cited = cited.contains(&source.n);
        let marker = format!("[{}", source.n);
        let claims: String = if source.cited {
            answer_sentences
                .iter()
                .map(|&(s, e)| slice_chars(answer, s, e))
                .filter(|s| s.contains(&marker) || cited_numbers(s).contains(&source.n))
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            answer.to_string()
        };
        source.highlights = supporting_spans(&claims, &source.text);
    }
}

/// For each sentence of `claims`, the sentences of `passage` that support
/// it: the one sharing the most content words with it (at least two, and a
/// third of the claim's), then, while the claim has words left unexplained,
/// the sentence explaining the most of them (at least three, or a quarter of
/// the claim). Neighbouring supporting sentences merge into one span. An
/// answer that restates several sentences of a passage, even in one sentence
/// of its own, gets each of them highlighted.
pub fn supporting_spans(claims: &str, passage: &str) -> Vec<TextSpan> {
    let passage_sentences: Vec<((usize, usize), HashSet<String>)> = sentences(passage)
        .into_iter()
        .map(|(s, e)| ((s, e), terms(&slice_chars(passage, s, e)).collect()))
        .collect();
    let mut supporting = std::collections::BTreeSet::new();
    for (s, e) in sentences(claims) {
        let claim: HashSet<String> = terms(&slice_chars(claims, s, e)).collect();
        let mut unexplained = claim.clone();
        loop {
            let best = passage_sentences
                .iter()
                .enumerate()
                .filter(|(i, _)| !supporting.contains(i))
                .map(|(i, (_, words))| (i, words.intersection(&unexplained).count()))
                // Ties go to the earlier sentence.
                .max_by_key(|&(i, shared)| (shared, std::cmp::Reverse(i)));
            let Some((i, shared)) = best else { break };
            let enough = if unexplained.len() == claim.len() {
                shared >= 2 && shared * 3 >= claim.len()
            } else {
                shared >= 3 || (shared >= 2 && shared * 4 >= claim.len())
            };
            if !enough {
                break;
            }
            supporting.insert(i);
            unexplained.retain(|w| !passage_sentences[i].1.contains(w));
        }
    }
    let mut spans: Vec<TextSpan> = Vec::new();
    let mut previous: Option<usize> = None;
    for i in supporting {
        let ((start, end), _) = passage_sentences[i];
        let start = u32::try_from(start).unwrap_or(u32::MAX);
        let end = u32::try_from(end).unwrap_or(u32::MAX);
        match spans.last_mut() {
            Some(last) if previous == Some(i - 1) => last.end = end,
            _ => spans.push(TextSpan { start, end }),
        }
        previous = Some(i);
    }
    spans
}

fn slice_chars(text: &str, start: usize, end: usize) -> String {
    text.chars().skip(start).take(end - start).collect()
}

/// Sentences as char ranges, trimmed of surrounding whitespace.
fn sentences(text: &str) -> Vec<(usize, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..chars.len() {
        let ends_sentence = matches!(chars[i], '.' | '!' | '?' | '\n')
            && chars.get(i + 1).is_none_or(|c| c.is_whitespace())
            // "e.g." and "Fig. 2" are not sentence ends worth splitting on.
            && !(chars[i] == '.' && i >= 1 && i + 2 < chars.len() && chars[i + 2].is_lowercase());
        if ends_sentence {
            push_trimmed(&chars, start, i + 1, &mut out);
            start = i + 1;
        }
    }
    push_trimmed(&chars, start, chars.len(), &mut out);
    out
}

fn push_trimmed(chars: &[char], mut start: usize, mut end: usize, out: &mut Vec<(usize, usize)>) {
    while start < end && chars[start].is_whitespace() {
        start += 1;
    }
    while end > start && chars[end - 1].is_whitespace() {
        end -= 1;
    }
    if end > start {
        out.push((start, end));
    }
}

const STOPWORDS: &[&str] = &[
    "the",
    "and",
    "for",
    "are",
    "was",
    "were",
    "with",
    "that",
    "this",
    "from",
    "which",
    "what",
    "who",
    "when",
    "where",
    "how",
    "why",
    "has",
    "have",
    "had",
    "not",
    "but",
    "its",
    "it's",
    "their",
    "they",
    "them",
    "there",
    "than",
    "then",
    "into",
    "onto",
    "about",
    "also",
    "been",
    "being",
    "can",
    "could",
    "would",
    "should",
    "will",
    "may",
    "might",
    "such",
    "these",
    "those",
    "our",
    "your",
    "you",
    "all",
    "any",
    "each",
    "other",
    "some",
    "more",
    "most",
    "only",
    "over",
    "very",
    "source",
    "sources",
    "document",
    "documents",
    "according",
];

/// Lowercased content words, cut to a six-letter prefix as a cheap stem
/// ("engineer" and "engineering" meet).
fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| {
            w.chars().count() >= 3 || w.chars().all(|c| c.is_ascii_digit()) && !w.is_empty()
        })
        .map(str::to_lowercase)
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .map(|w| w.chars().take(6).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_citation_markers() {
        let cited =
            cited_numbers("Bridges [1]. Rivers [2, 3] and [4][6]. Also [7-9]. Not [x] or [].");
        assert_eq!(
            cited.into_iter().collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 6, 7, 8, 9]
        );
        assert!(cited_numbers("no citations here").is_empty());
        assert!(cited_numbers("unclosed [1").is_empty());
    }

    #[test]
    fn highlights_the_supporting_sentence() {
        let passage = "The town has a market. The Velloran bridge was completed in 1873 by engineer Mara Quist. It spans the river.";
        let spans = supporting_spans(
            "The bridge was completed in 1873 by Mara Quist [1].",
            passage,
        );
        assert_eq!(spans.len(), 1);
        let text = slice_chars(passage, spans[0].start as usize, spans[0].end as usize);
        assert_eq!(
            text,
            "The Velloran bridge was completed in 1873 by engineer Mara Quist."
        );
    }

    #[test]
    fn offsets_count_characters_not_bytes() {
        let passage = "Ünïcödé prelude here. Zürich hosts the ETH university since 1855.";
        let spans = supporting_spans("ETH university in Zürich since 1855", passage);
        let text = slice_chars(passage, spans[0].start as usize, spans[0].end as usize);
        assert_eq!(text, "Zürich hosts the ETH university since 1855.");
    }

    #[test]
    fn every_restated_sentence_is_highlighted() {
        let passage = "The Velloran bridge was completed in 1873 by engineer Mara Quist. \
            It spans 212 metres across the Tesk river. The town holds a fair in May. \
            Quist insisted that the arches be built from granite quarried at Hollin Scar, \
            because the local sandstone crumbled after two winters of frost.";
        let answer = "The bridge was completed in 1873 by engineer Mara Quist [1]. \
            Quist insisted on granite from Hollin Scar because sandstone crumbled [1].";
        let spans = supporting_spans(answer, passage);
        let texts: Vec<String> = spans
            .iter()
            .map(|s| slice_chars(passage, s.start as usize, s.end as usize))
            .collect();
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert!(texts[0].contains("1873") && !texts[0].contains("Tesk"));
        assert!(texts[1].starts_with("Quist insisted"));
    }

    #[test]
    fn one_answer_sentence_can_restate_two_passage_sentences() {
        let passage = "The Velloran bridge was completed in 1873 by engineer Mara Quist. \
            It spans 212 metres across the Tesk river on eleven granite arches. \
            The town holds a fair in May.";
        let answer = "In 1873, the Velloran Bridge was completed by engineer Mara Quist, \
            and it spans 212 metres across the Tesk river on eleven granite arches.";
        let spans = supporting_spans(answer, passage);
        assert_eq!(spans.len(), 1);
        let text = slice_chars(passage, spans[0].start as usize, spans[0].end as usize);
        assert!(text.contains("1873") && text.contains("granite arches."));
        assert!(!text.contains("fair"));
    }

    #[test]
    fn neighbouring_supporting_sentences_form_one_span() {
        let passage = "Intro words here. The bridge opened in 1873. It spans the Tesk river. Unrelated ending.";
        let spans = supporting_spans(
            "It opened in 1873. The bridge spans the Tesk river.",
            passage,
        );
        assert_eq!(spans.len(), 1);
        let text = slice_chars(passage, spans[0].start as usize, spans[0].end as usize);
        assert_eq!(text, "The bridge opened in 1873. It spans the Tesk river.");
    }

    #[test]
    fn nothing_to_highlight_without_overlap() {
        assert!(
            supporting_spans("Completely unrelated words", "The bridge spans the river.")
                .is_empty()
        );
    }

    #[test]
    fn annotate_marks_cited_sources() {
        let source = |n: u32, text: &str| Source {
            collection: None,
            n,
            document_id: "d".into(),
            document_name: "doc".into(),
            page: None,
            heading: None,
            chunk_index: 0,
            text: text.into(),
            score: 0.0,
            cited: false,
            highlights: Vec::new(),
        };
        let mut sources = vec![
            source(1, "Cats sleep sixteen hours daily. Dogs bark."),
            source(2, "Paris hosts the Louvre museum."),
        ];
        annotate("Cats sleep sixteen hours a day [1].", &mut sources);
        assert!(sources[0].cited);
        assert!(!sources[1].cited);
        assert_eq!(sources[0].highlights, vec![TextSpan { start: 0, end: 31 }]);
    }
}
