//! BM25 sparse vectors, computed client-side so that both backends index and
//! query exactly the same numbers.
//!
//! BM25 factorises into a per-document term weight and a per-term IDF:
//!
//! ```text
//! score(q, d) = Σ_{t ∈ q ∩ d}  idf(t) · tf(t,d)·(k1+1) / (tf(t,d) + k1·(1 − b + b·|d|/avg_len))
//! ```
//!
//! The document side (everything right of `idf`) only needs the document
//! itself, so it is stored as the sparse vector's value. The IDF part needs
//! corpus statistics that change with every upsert; Qdrant computes it at query
//! time from its own posting lists when the sparse vector is configured with
//! `Modifier::Idf` (both Qdrant Edge 0.9 and the server support this). A query
//! vector is therefore just `1.0` per unique query term, and the dot product
//! Qdrant computes is exactly the BM25 score above.
//!
//! Terms are mapped to sparse indices with 32-bit FNV-1a instead of a learned
//! vocabulary: a vocabulary would be mutable state that has to be persisted,
//! shared between processes and kept in sync with the index, whereas a hash is
//! a pure function of the term. Collisions merge two terms into one dimension.
//! With a realistic vocabulary of V ≈ 10⁵–10⁶ distinct stems, the chance that a
//! particular query term shares its index with some other term is about
//! V / 2³² ≤ 0.03 %, and the effect of such a collision is a slightly inflated
//! score for documents containing the other term — a negligible loss next to
//! the dense retriever it is fused with.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use rust_stemmers::{Algorithm, Stemmer};
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

use super::SparseVector;

/// Term-frequency saturation: the usual Robertson/Lucene default.
pub const K1: f32 = 1.2;
/// Document-length normalisation strength: the usual default.
pub const B: f32 = 0.75;
/// Assumed average document length, in tokens *after* stopword removal.
///
/// BM25 wants the corpus average, but that changes with every upsert and would
/// force re-encoding stored vectors; a constant keeps stored vectors valid
/// forever. Chunks are roughly 800–1,500 characters (≈150–250 words); English
/// prose loses ≈40 % of its words to the stopword list, which leaves ≈100–150
/// tokens. A wrong guess only rescales how strongly long chunks are penalised
/// relative to short ones; it never changes which terms match.
pub const AVG_DOC_LEN: f32 = 128.0;
/// Longer "words" are almost always base64, hashes or URLs mangled by PDF
/// extraction; indexing them only bloats the posting lists.
const MAX_TOKEN_CHARS: usize = 40;

/// English stopwords (NLTK's list plus the apostrophe-less spellings that
/// PDF extraction produces), sorted so membership is a binary search.
const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "ain",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "aren",
    "aren't",
    "arent",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "couldn",
    "couldn't",
    "couldnt",
    "d",
    "did",
    "didn",
    "didn't",
    "didnt",
    "do",
    "does",
    "doesn",
    "doesn't",
    "doesnt",
    "doing",
    "don",
    "don't",
    "dont",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "hadn",
    "hadn't",
    "hadnt",
    "has",
    "hasn",
    "hasn't",
    "hasnt",
    "have",
    "haven",
    "haven't",
    "havent",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "isn",
    "isn't",
    "isnt",
    "it",
    "it's",
    "its",
    "itself",
    "just",
    "ll",
    "m",
    "ma",
    "me",
    "mightn",
    "mightn't",
    "more",
    "most",
    "mustn",
    "mustn't",
    "my",
    "myself",
    "needn",
    "needn't",
    "no",
    "nor",
    "not",
    "now",
    "o",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "re",
    "s",
    "same",
    "shan",
    "shan't",
    "she",
    "she's",
    "should",
    "should've",
    "shouldn",
    "shouldn't",
    "shouldnt",
    "so",
    "some",
    "such",
    "t",
    "than",
    "that",
    "that'll",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "ve",
    "very",
    "was",
    "wasn",
    "wasn't",
    "wasnt",
    "we",
    "were",
    "weren",
    "weren't",
    "werent",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "won",
    "won't",
    "wont",
    "wouldn",
    "wouldn't",
    "wouldnt",
    "y",
    "you",
    "you'd",
    "you'll",
    "you're",
    "you've",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// Turns text into BM25 sparse vectors. Cheap to clone and safe to share
/// between threads; create one and reuse it.
#[derive(Clone)]
pub struct Bm25 {
    stemmer: std::sync::Arc<Stemmer>,
}

impl std::fmt::Debug for Bm25 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bm25")
            .field("k1", &K1)
            .field("b", &B)
            .field("avg_len", &AVG_DOC_LEN)
            .finish()
    }
}

impl Default for Bm25 {
    fn default() -> Self {
        Self::new()
    }
}

impl Bm25 {
    pub fn new() -> Self {
        Self {
            stemmer: std::sync::Arc::new(Stemmer::create(Algorithm::English)),
        }
    }

    /// Normalised, stopword-free, stemmed tokens in text order. Public so that
    /// callers (and tests) can see exactly what gets indexed.
    pub fn tokens(&self, text: &str) -> Vec<String> {
        // NFKD splits "é" into "e" + combining accent (and "ﬁ" into "fi"), so
        // dropping combining marks folds accents without a lookup table.
        let folded: String = text
            .nfkd()
            .filter(|c| !is_combining_mark(*c))
            .map(|c| if c == '\u{2019}' { '\'' } else { c })
            .collect::<String>()
            .to_lowercase();
        folded
            .unicode_words()
            .filter(|word| word.chars().count() <= MAX_TOKEN_CHARS)
            .filter(|word| STOPWORDS.binary_search(word).is_err())
            .map(|word| self.stemmer.stem(word).into_owned())
            .filter(|stem| !stem.is_empty())
            .collect()
    }

    /// Document-side vector: BM25 term-frequency saturation per term.
    pub fn document(&self, text: &str) -> SparseVector {
        let tokens = self.tokens(text);
        // Counted per hashed index rather than per string so that colliding
        // terms within one document merge into one consistent weight.
        let mut tf: BTreeMap<u32, f32> = BTreeMap::new();
        for token in &tokens {
            *tf.entry(term_index(token)).or_insert(0.0) += 1.0;
        }
        let len_norm = 1.0 - B + B * tokens.len() as f32 / AVG_DOC_LEN;
        let (indices, values) = tf
            .into_iter()
            .map(|(index, tf)| (index, tf * (K1 + 1.0) / (tf + K1 * len_norm)))
            .unzip();
        SparseVector { indices, values }
    }

    /// Query-side vector: 1.0 per unique term; Qdrant's IDF modifier supplies
    /// the per-term weight at search time.
    pub fn query(&self, text: &str) -> SparseVector {
        let mut indices: Vec<u32> = self.tokens(text).iter().map(|t| term_index(t)).collect();
        indices.sort_unstable();
        indices.dedup();
        let values = vec![1.0; indices.len()];
        SparseVector { indices, values }
    }
}

/// One shared encoder: it is stateless, and building the stemmer per call
/// would be wasted work.
static ENCODER: LazyLock<Bm25> = LazyLock::new(Bm25::new);

/// [`Bm25::document`] with the shared encoder: the vector to store for a chunk.
pub fn document_vector(text: &str) -> SparseVector {
    ENCODER.document(text)
}

/// [`Bm25::tokens`] with the shared encoder.
pub fn tokens(text: &str) -> Vec<String> {
    ENCODER.tokens(text)
}

/// [`Bm25::query`] with the shared encoder: the vector to search with.
pub fn query_vector(text: &str) -> SparseVector {
    ENCODER.query(text)
}

/// Stable sparse index of a term: 32-bit FNV-1a over its UTF-8 bytes. Must
/// never change, or every stored vector silently stops matching queries.
pub fn term_index(term: &str) -> u32 {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    term.bytes().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopwords_are_sorted_and_unique() {
        assert!(STOPWORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn term_index_is_fnv1a() {
        // Reference values of 32-bit FNV-1a; if these change, every stored
        // index is invalidated.
        assert_eq!(term_index(""), 0x811c_9dc5);
        assert_eq!(term_index("a"), 0xe40c_292c);
        assert_eq!(term_index("foobar"), 0xbf9c_f968);
    }

    #[test]
    fn tokens_lowercase_fold_accents_drop_stopwords_and_stem() {
        let bm25 = Bm25::new();
        assert_eq!(
            bm25.tokens("The Café's RUNNING dogs, naïvely jumped over the fences!"),
            vec!["cafe", "run", "dog", "naiv", "jump", "fenc"]
        );
    }

    #[test]
    fn tokens_keep_numbers_and_split_on_punctuation() {
        let bm25 = Bm25::new();
        assert_eq!(
            bm25.tokens("COVID-19 in 2020: x-ray"),
            vec!["covid", "19", "2020", "x", "ray"]
        );
    }

    #[test]
    fn curly_apostrophes_are_treated_like_straight_ones() {
        let bm25 = Bm25::new();
        assert_eq!(bm25.tokens("don\u{2019}t stop"), bm25.tokens("don't stop"));
        assert_eq!(bm25.tokens("don't stop"), vec!["stop"]);
    }

    #[test]
    fn overlong_tokens_are_dropped() {
        let bm25 = Bm25::new();
        let junk = "q".repeat(MAX_TOKEN_CHARS + 1);
        assert_eq!(bm25.tokens(&format!("kidney {junk}")), vec!["kidney"]);
    }

    #[test]
    fn empty_and_stopword_only_text_give_empty_vectors() {
        let bm25 = Bm25::new();
        for text in ["", "   ", "the and of it", "!!! ..."] {
            assert_eq!(bm25.document(text), SparseVector::default(), "{text:?}");
            assert_eq!(bm25.query(text), SparseVector::default(), "{text:?}");
        }
    }

    #[test]
    fn document_values_follow_bm25_saturation() {
        let bm25 = Bm25::new();
        // Tokens after processing: [kidney, kidney, stone] → len 3.
        let vector = bm25.document("kidney kidney stones");
        let len_norm = 1.0 - B + B * 3.0 / AVG_DOC_LEN;
        let weight = |tf: f32| tf * (K1 + 1.0) / (tf + K1 * len_norm);
        let mut expected = vec![
            (term_index("kidney"), weight(2.0)),
            (term_index("stone"), weight(1.0)),
        ];
        expected.sort_by_key(|(index, _)| *index);
        let actual: Vec<(u32, f32)> = vector
            .indices
            .iter()
            .copied()
            .zip(vector.values.iter().copied())
            .collect();
        assert_eq!(actual.len(), expected.len());
        for ((ai, av), (ei, ev)) in actual.iter().zip(&expected) {
            assert_eq!(ai, ei);
            assert!((av - ev).abs() < 1e-6, "{av} vs {ev}");
        }
    }

    #[test]
    fn repeated_terms_saturate_and_long_documents_weigh_less() {
        let bm25 = Bm25::new();
        let value = |text: &str| {
            let v = bm25.document(text);
            let pos = v.indices.iter().position(|&i| i == term_index("kidney"));
            pos.map(|p| v.values[p]).unwrap_or_default()
        };
        let once = value("kidney");
        let twice = value("kidney kidney");
        let many = value(&"kidney ".repeat(50));
        assert!(once < twice && twice < many);
        assert!(many < K1 + 1.0, "tf weight is bounded by k1 + 1");
        let padding = "renal cortex biopsy ".repeat(60);
        assert!(value(&format!("kidney {padding}")) < once);
    }

    #[test]
    fn query_is_unit_weight_per_unique_term_sorted() {
        let bm25 = Bm25::new();
        let q = bm25.query("Kidney stones? kidney STONE treatment");
        let mut expected = vec![
            term_index("kidney"),
            term_index("stone"),
            term_index("treatment"),
        ];
        expected.sort_unstable();
        assert_eq!(q.indices, expected);
        assert_eq!(q.values, vec![1.0; 3]);
    }

    #[test]
    fn document_indices_are_sorted_and_unique() {
        let bm25 = Bm25::new();
        let v = bm25.document(
            "Hypertension is a major risk factor for chronic kidney disease, \
             and chronic kidney disease worsens hypertension.",
        );
        assert!(v.indices.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(v.indices.len(), v.values.len());
        assert!(v.values.iter().all(|x| x.is_finite() && *x > 0.0));
    }

    #[test]
    fn shared_encoder_matches_a_fresh_one() {
        let text = "Statins and myopathy in older adults";
        assert_eq!(document_vector(text), Bm25::new().document(text));
        assert_eq!(query_vector(text), Bm25::new().query(text));
    }

    #[test]
    fn inflections_of_a_word_share_one_index() {
        let bm25 = Bm25::new();
        let d = bm25.document("Patients were running daily");
        let q = bm25.query("runs");
        assert_eq!(q.indices, vec![term_index("run")]);
        assert!(d.indices.contains(&term_index("run")));
    }
}
