//! The local embedder against sentence-transformers' own vectors
//! (tests/fixtures/embeddings.json, made by scripts/make-embedding-fixture.py).

use ragchat::embed::local::LocalEmbedder;
use ragchat::embed::{cosine, Embedder, ModelTokens};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Deserialize)]
struct Fixture {
    max_seq_length: usize,
    items: Vec<FixtureItem>,
}

#[derive(Deserialize)]
struct FixtureItem {
    name: String,
    text: String,
    tokens_untruncated: usize,
    vector: Vec<f32>,
}

/// `$RAGCHAT_MODEL_DIR/all-minilm-l6-v2`, by default under `~/.cache/ragchat/models`.
fn embedding_model_dir() -> PathBuf {
    std::env::var_os("RAGCHAT_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"))
                .join("ragchat")
                .join("models")
        })
        .join("all-minilm-l6-v2")
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("../fixtures/embeddings.json"))
        .expect("tests/fixtures/embeddings.json parses")
}

#[tokio::test]
async fn local_embeddings_match_sentence_transformers() {
    let dir = embedding_model_dir();
    if !dir.join("model.onnx").is_file() {
        println!(
            "SKIP: local_embeddings_match_sentence_transformers: no embedding model at {} (run scripts/fetch-embedding-model.sh)",
            dir.display()
        );
        return;
    }
    let fixture = fixture();
    let embedder =
        tokio::task::spawn_blocking(move || LocalEmbedder::shared(&dir, 0, Default::default()))
            .await
            .expect("load task")
            .expect("the local embedder loads");
    assert_eq!(embedder.model(), "all-MiniLM-L6-v2");
    assert_eq!(embedder.dimension(), 384);
    assert_eq!(fixture.max_seq_length, 256);
    assert!(
        fixture.items.iter().any(|i| i.tokens_untruncated > 256),
        "the fixture must exercise truncation"
    );

    let texts: Vec<String> = fixture.items.iter().map(|i| i.text.clone()).collect();
    let documents = embedder
        .embed_documents(texts)
        .await
        .expect("embed documents");
    assert_eq!(documents.len(), fixture.items.len());
    let mut worst = f32::INFINITY;
    for (item, got) in fixture.items.iter().zip(&documents) {
        assert_eq!(got.len(), 384, "{}", item.name);
        let norm = got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "{}: norm {norm}", item.name);
        let similarity = cosine(got, &item.vector);
        println!("{:<20} cosine {similarity:.6}", item.name);
        assert!(
            similarity >= 0.999,
            "{}: cosine {similarity} < 0.999",
            item.name
        );
        worst = worst.min(similarity);
    }
    println!("lowest cosine to sentence-transformers: {worst:.6}");

    // A query alone (no batch, no padding) gets the same vector as in a batch.
    let query = &fixture.items[1];
    let alone = embedder
        .embed_query(query.text.clone())
        .await
        .expect("embed query");
    let in_batch = cosine(&alone, &documents[1]);
    assert!(in_batch >= 0.9999, "query alone vs in a batch: {in_batch}");
    assert!(embedder
        .embed_documents(Vec::new())
        .await
        .expect("empty")
        .is_empty());
}

#[test]
fn model_token_spans_are_word_pieces_of_the_text() {
    let dir = embedding_model_dir();
    if !dir.join("tokenizer.json").is_file() {
        println!(
            "SKIP: model_token_spans_are_word_pieces_of_the_text: no tokenizer at {} (run scripts/fetch-embedding-model.sh)",
            dir.display()
        );
        return;
    }
    let tokens = ModelTokens::load(&dir).expect("tokenizer loads");
    let text = "Crème brûlée, unbelievably 東京!";
    let pieces: Vec<&str> = tokens
        .token_spans(text)
        .into_iter()
        .map(|r| &text[r])
        .collect();
    // The model lowercases and strips accents, yet the spans index the
    // original text; "##" pieces cover just their own bytes and CJK
    // characters are tokens of their own.
    assert_eq!(
        pieces,
        ["Cr", "ème", "br", "ûlé", "e", ",", "un", "bel", "ie", "va", "bly", "東", "京", "!"]
    );
    // No truncation, no special tokens: the fixture's long text keeps all its tokens.
    let fixture = fixture();
    let long = fixture
        .items
        .iter()
        .find(|i| i.tokens_untruncated > 256)
        .expect("long item");
    assert_eq!(tokens.count(&long.text), long.tokens_untruncated - 2);
}

#[tokio::test]
async fn local_query_is_not_queued_behind_a_whole_document_run() {
    let dir = embedding_model_dir();
    if !dir.join("model.onnx").is_file() {
        println!(
            "SKIP: local_query_is_not_queued_behind_a_whole_document_run: no embedding model at {} (run scripts/fetch-embedding-model.sh)",
            dir.display()
        );
        return;
    }
    let embedder =
        tokio::task::spawn_blocking(move || LocalEmbedder::shared(&dir, 0, Default::default()))
            .await
            .expect("load task")
            .expect("the local embedder loads");
    let long = fixture()
        .items
        .into_iter()
        .find(|i| i.tokens_untruncated > 256)
        .expect("long item")
        .text;
    // 8 batches of full-length texts: a second or more of work.
    let documents = {
        let embedder = embedder.clone();
        tokio::spawn(async move { embedder.embed_documents(vec![long; 256]).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let query = embedder
        .embed_query("where is the lace plant from?".into())
        .await;
    let waited = started.elapsed();
    assert!(query.is_ok(), "{query:?}");
    assert!(
        !documents.is_finished(),
        "the documents finished before the query ({waited:?}): the test proves nothing"
    );
    println!("query answered in {waited:?} while documents were being embedded");
    let vectors = documents.await.expect("documents task").expect("documents");
    assert_eq!(vectors.len(), 256);
}
