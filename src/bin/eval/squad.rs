//! A QA set in SQuAD's JSON format (SQuAD v1.1/v2.0, PolicyQA, …) as a
//! long-document set: each article is one document, its title on the first
//! line and its paragraphs below, separated by blank lines, the way a person
//! would save it as text. Questions keep their answer texts; unanswerable
//! ones (v2.0) are left out. Several files are read as one set.

use anyhow::Context;
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    data: Vec<Article>,
}

#[derive(Deserialize)]
struct Article {
    title: String,
    paragraphs: Vec<Paragraph>,
}

#[derive(Deserialize)]
struct Paragraph {
    context: String,
    qas: Vec<Qa>,
}

#[derive(Deserialize)]
struct Qa {
    id: String,
    question: String,
    answers: Vec<Answer>,
}

#[derive(Deserialize)]
struct Answer {
    text: String,
}

pub struct Document {
    /// The file name it is uploaded as: unique per document.
    pub key: String,
    pub title: String,
    pub text: String,
}

pub struct Question {
    pub id: String,
    /// [`Document::key`] of the document it is about.
    pub document: String,
    pub question: String,
    pub answers: Vec<String>,
}

pub struct LongDocSet {
    pub documents: Vec<Document>,
    pub questions: Vec<Question>,
}

impl LongDocSet {
    /// The documents as uploads (reader, file name, text) for
    /// [`Corpus::ingest`](super::corpus::Corpus::ingest): each by a reader
    /// of its own (named by its key), or all by `one_reader`.
    pub fn uploads(&self, one_reader: Option<&str>) -> Vec<(String, String, String)> {
        self.documents
            .iter()
            .map(|d| {
                let reader = one_reader.unwrap_or(&d.key).to_owned();
                (reader, d.key.clone(), d.text.clone())
            })
            .collect()
    }
}

/// Reads SQuAD-format files (plain or gzipped JSON, comma-separated):
/// one document per article, every answerable question.
pub fn load(paths: &str) -> anyhow::Result<LongDocSet> {
    let mut documents = Vec::new();
    let mut questions = Vec::new();
    for path in paths.split(',') {
        let file: File = serde_json::from_slice(&read(path)?)
            .with_context(|| format!("parsing {path} as SQuAD JSON"))?;
        add_articles(file, &mut documents, &mut questions);
    }
    Ok(LongDocSet {
        documents,
        questions,
    })
}

fn read(path: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    if !path.ends_with(".gz") {
        return Ok(bytes);
    }
    let mut json = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut json)
        .with_context(|| format!("decompressing {path}"))?;
    Ok(json)
}

fn add_articles(file: File, documents: &mut Vec<Document>, questions: &mut Vec<Question>) {
    for article in file.data {
        let title = article.title.replace('_', " ");
        let key = format!("{}.txt", article.title.replace(['/', '\\'], "-"));
        let mut text = title.clone();
        for paragraph in &article.paragraphs {
            text.push_str("\n\n");
            text.push_str(paragraph.context.trim());
            for qa in &paragraph.qas {
                let answers: Vec<String> = qa
                    .answers
                    .iter()
                    .map(|a| a.text.trim().to_owned())
                    .filter(|a| !a.is_empty())
                    .collect();
                if !answers.is_empty() {
                    questions.push(Question {
                        id: qa.id.clone(),
                        document: key.clone(),
                        question: qa.question.trim().to_owned(),
                        answers,
                    });
                }
            }
        }
        documents.push(Document { key, title, text });
    }
}
