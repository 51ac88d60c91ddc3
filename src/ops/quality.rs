//! The operators' quality loop, for the dashboard's time range: *knowledge
//! gaps*, the questions the documents didn't answer (the search found no
//! passage or only weak ones, the answer said the documents don't cover
//! it, or it was voted down), grouped by meaning with the app's embedder;
//! and *weak sources*, the document versions and passages behind the
//! answers people voted down, ranked by the Wilson interval of their
//! down-vote rate.

use crate::config::QualitySettings;
use crate::embed::{cosine, Embedder};
use crate::ops::statistics::{rate_ci, wilson};
use crate::store::{db_int, DocumentLabel, GapCandidate, Store, VotedAnswer};
use app::error::AppError;
use app::wire::{GapReasons, KnowledgeGap, QualityReport, Source, SourceAnswer, WeakSource};
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

/// The store's filter on answers is coarse (any answer that names the
/// documents): this many turns are read per gap question wanted.
const CANDIDATES_PER_QUESTION: i64 = 4;
const GAPS_SHOWN: usize = 30;
const ALSO_ASKED_SHOWN: usize = 3;
/// Voted answers read per range (the latest); each holds its sources.
const VOTED_ANSWERS_READ: i64 = 5_000;
const SOURCES_SHOWN: usize = 20;
const ANSWERS_SHOWN: usize = 3;
const QUESTION_CHARS: usize = 300;
const ANSWER_CHARS: usize = 300;
const PASSAGE_CHARS: usize = 240;
/// Question vectors kept between requests (a reload embeds nothing new).
const VECTORS_KEPT: usize = 4_096;

/// What an answer saying the documents don't cover a question talks about.
/// Word beginnings, lowercase: the store's coarse filter looks for them in
/// answers, and [`says_not_covered`] wants one in the sentence it matches.
pub const SUBJECTS: [&str; 5] = ["document", "source", "context", "passage", "excerpt"];

/// Words that negate what follows them within [`NEGATION_REACH`] words.
const NEGATORS: [&str; 15] = [
    "not", "don't", "doesn't", "didn't", "cannot", "can't", "couldn't", "never", "isn't", "aren't",
    "wasn't", "weren't", "unable", "nothing", "none",
];
const NEGATION_REACH: usize = 4;
/// Beginnings of the words that say what documents do with a topic.
const COVERAGE_STEMS: [&str; 18] = [
    "say", "said", "mention", "cover", "contain", "includ", "provid", "address", "discuss",
    "specif", "state", "find", "found", "describ", "explain", "inform", "detail", "refer",
];
/// Whole words that do the same.
const COVERAGE_WORDS: [&str; 8] = [
    "has", "have", "had", "give", "gives", "given", "about", "answer",
];
/// What "no" comes before in "no information", "no mention", "no details".
const ABSENT_THINGS: [&str; 7] = [
    "information",
    "mention",
    "details",
    "detail",
    "reference",
    "data",
    "answer",
];

/// Whether an answer says that the documents don't cover the question, as
/// the grounding rules ask ("say that the documents do not say"), or in
/// close words: "the sources don't mention …", "there is no information
/// about … in the documents", "I couldn't find … in the provided context",
/// "… is not in the documents". One sentence must name the documents and
/// negate what they say; a sentence that cites a source (`[n]`) is using
/// them, not missing them.
pub fn says_not_covered(answer: &str) -> bool {
    let answer = answer.to_lowercase().replace(['\u{2019}', '\u{2018}'], "'");
    answer
        .split(['.', '!', '?', ';', '\n'])
        .filter(|sentence| !cites(sentence))
        .any(|sentence| {
            let words: Vec<&str> = sentence
                .split(|c: char| !(c.is_alphanumeric() || c == '\''))
                .map(|w| w.trim_matches('\''))
                .filter(|w| !w.is_empty())
                .collect();
            let names_documents = words
                .iter()
                .any(|w| SUBJECTS.iter().any(|s| w.starts_with(s)));
            names_documents && negates_coverage(&words)
        })
}

/// "[1]", "[2][3]": a citation marker.
fn cites(sentence: &str) -> bool {
    sentence.split('[').skip(1).any(|rest| {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with(']')
    })
}

fn negates_coverage(words: &[&str]) -> bool {
    let covers =
        |w: &str| COVERAGE_WORDS.contains(&w) || COVERAGE_STEMS.iter().any(|s| w.starts_with(s));
    let is_subject = |w: &str| SUBJECTS.iter().any(|s| w.starts_with(s));
    words.iter().enumerate().any(|(i, &word)| {
        let after = &words[i + 1..];
        if word == "no" {
            return after.iter().take(2).any(|w| ABSENT_THINGS.contains(w));
        }
        if !NEGATORS.contains(&word) {
            return false;
        }
        // "is not in the provided documents"
        let not_in =
            after.first() == Some(&"in") && after.iter().skip(1).take(3).any(|w| is_subject(w));
        not_in || after.iter().take(NEGATION_REACH).any(|w| covers(w))
    })
}

/// Why one turn is a knowledge gap (all zero: it isn't one).
fn reasons_of(turn: &GapCandidate, low_score: f64) -> GapReasons {
    let weak = turn.sources == 0 || turn.top_score.is_some_and(|score| score < low_score);
    GapReasons {
        low_score: u64::from(turn.searched && weak),
        not_covered: u64::from(says_not_covered(&turn.answer)),
        down_voted: u64::from(turn.down_votes > 0),
    }
}

fn add_reasons(total: &mut GapReasons, more: &GapReasons) {
    total.low_score += more.low_score;
    total.not_covered += more.not_covered;
    total.down_voted += more.down_voted;
}

/// One question that is a knowledge gap.
#[derive(Debug, Clone, PartialEq)]
struct GapQuestion {
    text: String,
    at: i64,
    user_id: String,
    reasons: GapReasons,
    top_score: Option<f64>,
}

fn gap_question(turn: GapCandidate, low_score: f64) -> Option<GapQuestion> {
    let reasons = reasons_of(&turn, low_score);
    let text = clip(&turn.question, QUESTION_CHARS);
    let is_gap = reasons != GapReasons::default();
    (is_gap && !text.is_empty()).then_some(GapQuestion {
        text,
        at: turn.at,
        user_id: turn.user_id,
        reasons,
        top_score: turn.top_score,
    })
}

/// Greedy grouping in the order given (newest first): each item joins the
/// first group whose first member it is `similar` to, or starts a group.
/// Groups hold indices, in the order given.
pub fn cluster(items: usize, similar: impl Fn(usize, usize) -> bool) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for item in 0..items {
        match groups.iter_mut().find(|group| similar(group[0], item)) {
            Some(group) => group.push(item),
            None => groups.push(vec![item]),
        }
    }
    groups
}

/// The same question in other case or spacing (grouping without vectors).
fn wording(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn summarize_group(questions: &[GapQuestion], members: &[usize]) -> KnowledgeGap {
    let first = &questions[members[0]];
    let mut reasons = GapReasons::default();
    let mut people = HashSet::new();
    let mut wordings = HashSet::from([wording(&first.text)]);
    let mut also_asked = Vec::new();
    for question in members.iter().map(|&i| &questions[i]) {
        add_reasons(&mut reasons, &question.reasons);
        people.insert(question.user_id.as_str());
        if also_asked.len() < ALSO_ASKED_SHOWN && wordings.insert(wording(&question.text)) {
            also_asked.push(question.text.clone());
        }
    }
    KnowledgeGap {
        question: first.text.clone(),
        also_asked,
        count: members.len() as u64,
        people: people.len() as u64,
        reasons,
        best_score: members
            .iter()
            .filter_map(|&i| questions[i].top_score)
            .max_by(f64::total_cmp),
        last_seen: members
            .iter()
            .map(|&i| questions[i].at)
            .max()
            .unwrap_or(first.at),
    }
}

/// The sources a vote on an answer counts toward: the passages it cites;
/// when it cites none (not every model marks its citations), every passage
/// it was given.
fn counted_sources(sources: &[Source]) -> Vec<&Source> {
    let cited: Vec<&Source> = sources.iter().filter(|s| s.cited).collect();
    if cited.is_empty() {
        sources.iter().collect()
    } else {
        cited
    }
}

/// The votes of the answers that used one document version or passage.
struct Tally<'a> {
    up: u64,
    down: u64,
    /// The source as the newest of them had it.
    source: &'a Source,
    /// Newest first, the first few.
    answers: Vec<&'a VotedAnswer>,
}

/// Adds each answer's votes to every key its counted sources have (once
/// per key and answer). `answers` come newest first.
fn tally<'a, K: Hash + Eq + Clone>(
    answers: &'a [VotedAnswer],
    key_of: impl Fn(&Source) -> K,
) -> HashMap<K, Tally<'a>> {
    let mut tallies: HashMap<K, Tally<'a>> = HashMap::new();
    for answer in answers {
        let mut seen = HashSet::new();
        for source in counted_sources(&answer.sources) {
            let key = key_of(source);
            if !seen.insert(key.clone()) {
                continue;
            }
            let entry = tallies.entry(key).or_insert_with(|| Tally {
                up: 0,
                down: 0,
                source,
                answers: Vec::new(),
            });
            entry.up += answer.up;
            entry.down += answer.down;
            if entry.answers.len() < ANSWERS_SHOWN {
                entry.answers.push(answer);
            }
        }
    }
    tallies
}

/// One row of the weak sources; `None` without votes.
fn weak_source(
    tally: &Tally,
    document_id: String,
    label: Option<&DocumentLabel>,
    passage: bool,
) -> Option<WeakSource> {
    let votes = tally.up + tally.down;
    let source = tally.source;
    Some(WeakSource {
        document_id,
        document_name: label.map_or_else(|| source.document_name.clone(), |l| l.name.clone()),
        version: label.and_then(|l| u32::try_from(l.version).ok()),
        collection: label
            .and_then(|l| l.collection.clone())
            .or_else(|| source.collection.clone()),
        chunk_index: passage.then_some(source.chunk_index),
        passage: passage.then(|| clip(&source.text, PASSAGE_CHARS)),
        up: tally.up,
        down: tally.down,
        down_rate: rate_ci(wilson(tally.down, votes))?,
        up_rate: rate_ci(wilson(tally.up, votes))?,
        answers: tally
            .answers
            .iter()
            .map(|a| SourceAnswer {
                question: clip(&a.question, QUESTION_CHARS),
                answer: clip(&a.answer, ANSWER_CHARS),
                up: a.up,
                down: a.down,
                voted_at: a.voted_at,
            })
            .collect(),
    })
}

/// Weakest first: by the lower bound of the down-vote rate's interval (a
/// rate from many votes outranks the same rate from one), then by
/// down-votes, then by votes.
pub fn rank(rows: &mut [WeakSource]) {
    rows.sort_by(|a, b| {
        b.down_rate
            .low
            .total_cmp(&a.down_rate.low)
            .then(b.down.cmp(&a.down))
            .then((b.up + b.down).cmp(&(a.up + a.down)))
            .then(a.document_name.cmp(&b.document_name))
            .then(a.chunk_index.cmp(&b.chunk_index))
    });
}

/// A document version: its lineage and version when the row is still
/// there (every build of it together), else its id.
fn version_key(labels: &HashMap<&str, &DocumentLabel>, document_id: &str) -> String {
    labels.get(document_id).map_or_else(
        || document_id.to_owned(),
        |l| format!("{}#{}", l.lineage_id, l.version),
    )
}

/// The weak document versions and passages of these voted answers.
fn weak_sources(
    answers: &[VotedAnswer],
    labels: &[DocumentLabel],
) -> (Vec<WeakSource>, Vec<WeakSource>) {
    let by_id: HashMap<&str, &DocumentLabel> = labels.iter().map(|l| (l.id.as_str(), l)).collect();
    // A version's link goes to the build that answers now, if any.
    let mut link: HashMap<String, &DocumentLabel> = HashMap::new();
    for label in labels {
        let key = version_key(&by_id, &label.id);
        if label.current || !link.contains_key(&key) {
            link.insert(key, label);
        }
    }
    let mut documents: Vec<WeakSource> = tally(answers, |s| version_key(&by_id, &s.document_id))
        .iter()
        .filter_map(|(key, t)| {
            let label = link.get(key).copied();
            let id = label.map_or_else(|| t.source.document_id.clone(), |l| l.id.clone());
            weak_source(t, id, label, false)
        })
        .collect();
    let mut passages: Vec<WeakSource> = tally(answers, |s| (s.document_id.clone(), s.chunk_index))
        .values()
        .filter_map(|t| {
            let id = t.source.document_id.clone();
            weak_source(
                t,
                id,
                by_id.get(t.source.document_id.as_str()).copied(),
                true,
            )
        })
        .collect();
    rank(&mut documents);
    rank(&mut passages);
    documents.truncate(SOURCES_SHOWN);
    passages.truncate(SOURCES_SHOWN);
    (documents, passages)
}

/// The text's first `chars` characters (trimmed), with "…" if cut.
fn clip(text: &str, chars: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", text[..at].trim_end()),
        None => text.to_owned(),
    }
}

/// Knowledge gaps and weak sources for a time range.
pub struct QualityReporter {
    store: Store,
    embedder: Arc<dyn Embedder>,
    settings: QualitySettings,
    /// Question vectors from earlier requests, by question.
    vectors: Mutex<HashMap<String, Vec<f32>>>,
}

/// The knowledge gaps of a range and how they were found.
struct Gaps {
    groups: Vec<KnowledgeGap>,
    questions: u64,
    capped: bool,
    by_meaning: bool,
}

impl QualityReporter {
    pub fn new(store: Store, embedder: Arc<dyn Embedder>, settings: QualitySettings) -> Self {
        Self {
            store,
            embedder,
            settings,
            vectors: Mutex::new(HashMap::new()),
        }
    }

    pub async fn report(&self, since: i64, until: i64) -> Result<QualityReport, AppError> {
        let gaps = self.knowledge_gaps(since, until).await?;
        let answers = self
            .store
            .voted_answers(since, until, VOTED_ANSWERS_READ)
            .await?;
        let mut ids: Vec<String> = answers
            .iter()
            .flat_map(|a| counted_sources(&a.sources))
            .map(|s| s.document_id.clone())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let labels = self.store.document_labels(&ids).await?;
        let (documents, passages) = weak_sources(&answers, &labels);
        Ok(QualityReport {
            since,
            until,
            low_score: self.settings.low_score,
            similar_questions: self.settings.similar_questions,
            gap_questions: gaps.questions,
            capped: gaps.capped,
            grouped_by_meaning: gaps.by_meaning,
            gaps: gaps.groups,
            documents,
            passages,
        })
    }

    /// The latest gap questions of the range (up to the cap), grouped.
    async fn knowledge_gaps(&self, since: i64, until: i64) -> Result<Gaps, AppError> {
        let wanted = self.settings.max_questions.max(1);
        let read = db_int(wanted).saturating_mul(CANDIDATES_PER_QUESTION);
        let candidates = self
            .store
            .gap_candidates(since, until, self.settings.low_score, &SUBJECTS, read)
            .await?;
        let all_read = db_int(candidates.len()) < read;
        let mut questions: Vec<GapQuestion> = candidates
            .into_iter()
            .filter_map(|turn| gap_question(turn, self.settings.low_score))
            .collect();
        let capped = questions.len() > wanted || !all_read;
        questions.truncate(wanted);
        let texts: Vec<String> = questions.iter().map(|q| q.text.clone()).collect();
        let vectors = self.embed_questions(&texts).await;
        let by_meaning = vectors.is_some();
        let threshold = self.settings.similar_questions as f32;
        // Up to a few hundred thousand dot products: off the async threads.
        let groups = tokio::task::spawn_blocking(move || match vectors {
            Some(v) => cluster(v.len(), |a, b| cosine(&v[a], &v[b]) >= threshold),
            None => cluster(texts.len(), |a, b| wording(&texts[a]) == wording(&texts[b])),
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "grouping knowledge gaps");
            AppError::Internal
        })?;
        let mut summaries: Vec<KnowledgeGap> = groups
            .iter()
            .map(|members| summarize_group(&questions, members))
            .collect();
        summaries.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_seen.cmp(&a.last_seen)));
        summaries.truncate(GAPS_SHOWN);
        Ok(Gaps {
            groups: summaries,
            questions: questions.len() as u64,
            capped,
            by_meaning,
        })
    }

    /// One vector per question, embedding only those not seen before;
    /// `None` if the embedder fails (the caller groups identical wordings).
    async fn embed_questions(&self, questions: &[String]) -> Option<Vec<Vec<f32>>> {
        let mut known: HashMap<String, Vec<f32>> = HashMap::new();
        let mut missing: Vec<String> = Vec::new();
        {
            let cache = self.vectors.lock().unwrap_or_else(PoisonError::into_inner);
            let mut asked = HashSet::new();
            for question in questions.iter().filter(|q| asked.insert(q.as_str())) {
                match cache.get(question) {
                    Some(vector) => {
                        known.insert(question.clone(), vector.clone());
                    }
                    None => missing.push(question.clone()),
                }
            }
        }
        if !missing.is_empty() {
            let vectors = match self.embedder.embed_documents(missing.clone()).await {
                Ok(vectors) if vectors.len() == missing.len() => vectors,
                Ok(_) => {
                    tracing::warn!("the embedder returned too few vectors for the knowledge gaps");
                    return None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "embedding the knowledge gaps' questions; grouping identical ones only");
                    return None;
                }
            };
            let fresh: Vec<(String, Vec<f32>)> = missing.into_iter().zip(vectors).collect();
            let mut cache = self.vectors.lock().unwrap_or_else(PoisonError::into_inner);
            if cache.len() + fresh.len() > VECTORS_KEPT {
                cache.clear();
            }
            cache.extend(fresh.iter().cloned());
            known.extend(fresh);
        }
        questions.iter().map(|q| known.get(q).cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_covered_matches_the_prompts_words_and_close_variants() {
        for answer in [
            "The documents do not say.",
            "I'm sorry, but the documents don't say when the tunnel opened.",
            "The Documents Do Not Say who built it.",
            "The provided sources don’t mention a sourdough starter.",
            "There is no information about pricing in the documents.",
            "I couldn't find anything about that in the provided context.",
            "This is not covered by the documents.",
            "The answer is not in the provided documents.",
            "None of the sources mention the author.",
            "The context does not provide enough information to answer.",
            "Good question! Unfortunately the passages contain no details on it.",
            "I was unable to find this in the documents you uploaded.",
        ] {
            assert!(says_not_covered(answer), "{answer}");
        }
        for answer in [
            "The bridge was completed in 1873 by Mara Quist [1].",
            "According to the documents, the bridge was completed in 1873.",
            "No, the documents say it was finished in 1873.",
            "The sources say the bridge is not open on Sundays.",
            "The document states that the tunnel was not in use after 1900.",
            "The documents don't agree: one says 1873 [1], the other 1874 [2].",
            "I don't know.",
            "It does not say anything about the weather, but it is sunny.",
            "",
        ] {
            assert!(!says_not_covered(answer), "{answer}");
        }
    }

    fn candidate(question: &str, answer: &str) -> GapCandidate {
        GapCandidate {
            at: 1,
            user_id: "u".into(),
            question: question.into(),
            answer: answer.into(),
            searched: true,
            sources: 3,
            top_score: Some(0.6),
            down_votes: 0,
        }
    }

    #[test]
    fn a_gap_is_a_weak_or_empty_search_a_not_covered_answer_or_a_down_vote() {
        let fine = candidate("When?", "In 1873 [1].");
        assert_eq!(gap_question(fine.clone(), 0.35), None);
        let weak = GapCandidate {
            top_score: Some(0.2),
            ..fine.clone()
        };
        assert_eq!(reasons_of(&weak, 0.35).low_score, 1);
        assert_eq!(reasons_of(&weak, 0.1).low_score, 0, "the threshold decides");
        let nothing_found = GapCandidate {
            sources: 0,
            top_score: None,
            ..fine.clone()
        };
        assert_eq!(reasons_of(&nothing_found, 0.35).low_score, 1);
        let not_searched = GapCandidate {
            searched: false,
            sources: 0,
            top_score: None,
            ..fine.clone()
        };
        assert_eq!(
            gap_question(not_searched, 0.35),
            None,
            "no documents to search"
        );
        let refused = candidate("Who?", "The documents do not say.");
        assert_eq!(
            reasons_of(&refused, 0.35),
            GapReasons {
                low_score: 0,
                not_covered: 1,
                down_voted: 0
            }
        );
        let voted_down = GapCandidate {
            down_votes: 2,
            ..fine.clone()
        };
        assert_eq!(reasons_of(&voted_down, 0.35).down_voted, 1);
        let no_question = GapCandidate {
            question: "  ".into(),
            ..voted_down
        };
        assert_eq!(gap_question(no_question, 0.35), None);
    }

    #[test]
    fn clustering_is_greedy_against_each_groups_first_member() {
        let unit = |degrees: f32| {
            let r = degrees.to_radians();
            vec![r.cos(), r.sin()]
        };
        // cos 30° ≈ 0.87 joins; cos 50° ≈ 0.64 doesn't, even when close to
        // a later member of the group (chaining would drift).
        let vectors = [unit(0.0), unit(30.0), unit(50.0), unit(180.0), unit(-20.0)];
        let groups = cluster(vectors.len(), |a, b| {
            cosine(&vectors[a], &vectors[b]) >= 0.8
        });
        assert_eq!(groups, [vec![0, 1, 4], vec![2], vec![3]]);
        assert!(cluster(0, |_, _| true).is_empty());
    }

    #[test]
    fn a_group_counts_questions_people_and_reasons() {
        let question = |text: &str, at: i64, user: &str, reasons: GapReasons| GapQuestion {
            text: text.into(),
            at,
            user_id: user.into(),
            reasons,
            top_score: Some(at as f64 / 100.0),
        };
        let low = GapReasons {
            low_score: 1,
            ..GapReasons::default()
        };
        let down = GapReasons {
            down_voted: 1,
            ..GapReasons::default()
        };
        let questions = [
            question("How do I make a starter?", 30, "ada", low),
            question("how do I make a  starter?", 20, "bob", down),
            question("Sourdough starter recipe?", 10, "ada", low),
        ];
        let gap = summarize_group(&questions, &[0, 1, 2]);
        assert_eq!(gap.question, "How do I make a starter?");
        assert_eq!(
            gap.also_asked,
            ["Sourdough starter recipe?"],
            "one per wording"
        );
        assert_eq!((gap.count, gap.people, gap.last_seen), (3, 2, 30));
        assert_eq!(
            gap.reasons,
            GapReasons {
                low_score: 2,
                not_covered: 0,
                down_voted: 1
            }
        );
        assert_eq!(gap.best_score, Some(0.3));
    }

    fn source(document_id: &str, chunk_index: u32, cited: bool) -> Source {
        Source {
            n: chunk_index + 1,
            document_id: document_id.into(),
            document_name: format!("{document_id}.pdf"),
            collection: Some("Shared".into()),
            page: None,
            heading: None,
            chunk_index,
            text: format!("passage {chunk_index} of {document_id}"),
            score: 0.5,
            cited,
            highlights: Vec::new(),
        }
    }

    fn voted(sources: Vec<Source>, up: u64, down: u64, at: i64) -> VotedAnswer {
        VotedAnswer {
            question: format!("question {at}"),
            answer: format!("answer {at}"),
            sources,
            up,
            down,
            voted_at: at,
        }
    }

    fn label(id: &str, lineage: &str, version: i64, current: bool) -> DocumentLabel {
        DocumentLabel {
            id: id.into(),
            name: format!("{lineage}.pdf"),
            lineage_id: lineage.into(),
            version,
            collection: Some("Team".into()),
            current,
        }
    }

    #[test]
    fn votes_count_toward_cited_passages_or_all_when_none_is_cited() {
        let cited = [source("a", 0, true), source("b", 0, false)];
        let counted: Vec<&str> = counted_sources(&cited)
            .iter()
            .map(|s| s.document_id.as_str())
            .collect();
        assert_eq!(counted, ["a"]);
        let uncited = [source("a", 0, false), source("b", 0, false)];
        assert_eq!(counted_sources(&uncited).len(), 2);
    }

    #[test]
    fn weak_sources_rank_by_the_lower_bound_of_the_down_vote_rate() {
        let answers = [
            // Newest first. "a" v1: three answers down; "b": one down;
            // "c": five up, one down.
            voted(vec![source("a1", 0, true), source("a1", 1, true)], 0, 1, 90),
            voted(vec![source("a1", 0, true)], 0, 1, 80),
            voted(vec![source("b", 0, true), source("c", 0, false)], 0, 1, 70),
            voted(vec![source("a1-rebuilt", 0, true)], 0, 1, 60),
            voted(vec![source("c", 0, true)], 5, 1, 50),
        ];
        let labels = [
            label("a1", "a", 1, false),
            label("a1-rebuilt", "a", 1, true),
            label("c", "c", 2, true),
        ];
        let (documents, passages) = weak_sources(&answers, &labels);
        let names: Vec<(&str, Option<u32>)> = documents
            .iter()
            .map(|d| (d.document_name.as_str(), d.version))
            .collect();
        assert_eq!(
            names,
            [("a.pdf", Some(1)), ("b.pdf", None), ("c.pdf", Some(2))]
        );
        let a = &documents[0];
        assert_eq!(
            (a.down, a.up),
            (3, 0),
            "each answer once, both builds of v1"
        );
        assert_eq!(
            a.document_id, "a1-rebuilt",
            "the link goes to the build that answers"
        );
        assert_eq!(a.collection.as_deref(), Some("Team"));
        assert_eq!(a.answers.len(), ANSWERS_SHOWN);
        assert_eq!(a.answers[0].voted_at, 90, "newest first");
        assert_eq!(a.up_rate.rate, 0.0);
        assert!(a.down_rate.low > documents[1].down_rate.low);
        assert_eq!(
            documents[1].collection.as_deref(),
            Some("Shared"),
            "deleted: as cited"
        );
        let c = &documents[2];
        assert_eq!(
            (c.down, c.up),
            (1, 5),
            "the uncited source of a citing answer not counted"
        );
        assert!(documents.iter().all(|d| d.chunk_index.is_none()));

        let first = &passages[0];
        assert_eq!(
            (first.document_id.as_str(), first.chunk_index),
            ("a1", Some(0))
        );
        assert_eq!((first.down, first.up), (2, 0));
        assert_eq!(first.passage.as_deref(), Some("passage 0 of a1"));
        assert_eq!(passages.len(), 5);
    }

    #[test]
    fn clipping_keeps_whole_characters() {
        assert_eq!(clip("  short  ", 10), "short");
        assert_eq!(clip("héllo wörld", 7), "héllo w…");
        assert_eq!(clip("ab cd", 3), "ab…");
    }
}
