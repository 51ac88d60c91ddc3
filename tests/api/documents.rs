//! Documents: upload, ingestion stages, bad files, duplicates, delete,
//! isolation between users, and grounding of the chat in retrieved passages.

use crate::faults::{upstream, Behaviour};
use crate::helpers::{client, spawn_app_http, TestApp};
use app::wire::{ChatEvent, DocumentStatus, DocumentView, UploadOutcome};
use std::path::Path;
use std::time::{Duration, Instant};

pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/docs")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// POSTs files to `/api/documents`; the status and the parsed body.
pub async fn upload(
    client: &reqwest::Client,
    base: &str,
    files: &[(&str, Vec<u8>)],
) -> (u16, serde_json::Value) {
    let mut form = reqwest::multipart::Form::new();
    for (name, bytes) in files {
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()),
        );
    }
    let response = client
        .post(format!("{base}/api/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

pub fn outcomes(body: serde_json::Value) -> Vec<UploadOutcome> {
    serde_json::from_value(body).expect("a list of upload outcomes")
}

/// Polls a document until ingestion ends (indexed or failed). The timeout
/// only guards against a hang; it is not a speed assertion.
pub async fn wait_done(client: &reqwest::Client, base: &str, id: &str) -> DocumentView {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let response = client
            .get(format!("{base}/api/documents/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let doc: DocumentView = response.json().await.unwrap();
        if !doc.status.is_pending() {
            return doc;
        }
        assert!(
            Instant::now() < deadline,
            "ingestion never finished: {doc:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl TestApp {
    pub fn base(&self) -> String {
        format!("http://{}", self.address)
    }

    async fn upload(&self, files: &[(&str, Vec<u8>)]) -> (u16, serde_json::Value) {
        upload(&self.client, &self.base(), files).await
    }

    /// Uploads one file that must be accepted, and waits for its ingestion.
    pub async fn ingest(&self, name: &str, bytes: Vec<u8>) -> DocumentView {
        let (status, body) = self.upload(&[(name, bytes)]).await;
        assert_eq!(status, 202, "{body}");
        let doc = outcomes(body).remove(0).document.expect("accepted");
        wait_done(&self.client, &self.base(), &doc.id).await
    }

    async fn documents(&self) -> Vec<DocumentView> {
        let response = self
            .client
            .get(self.url("/api/documents"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Vectors the index holds for a document (looked up by its owner).
    async fn vectors(&self, document_id: &str) -> u64 {
        let owner = self.owner_of(document_id).await;
        match owner {
            Some(owner) => self.index().count(&owner, Some(document_id)).await.unwrap(),
            None => 0,
        }
    }
}

async fn fake_model() -> crate::faults::Upstream {
    upstream(Behaviour::Stream {
        tokens: vec!["The bridge was finished in 1873 ", "by Mara Quist [1]."],
        usage: true,
    })
    .await
}

#[tokio::test]
async fn upload_two_files_and_recognise_a_duplicate() {
    let up = fake_model().await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    let (status, body) = app
        .upload(&[
            ("velloran-survey.pdf", fixture("velloran-survey.pdf")),
            ("garden-guide.md", fixture("garden-guide.md")),
        ])
        .await;
    assert_eq!(status, 202, "{body}");
    let accepted = outcomes(body);
    assert_eq!(accepted.len(), 2);
    let mut done = Vec::new();
    for outcome in &accepted {
        assert!(outcome.error.is_none() && !outcome.duplicate, "{outcome:?}");
        let doc = outcome.document.as_ref().unwrap();
        done.push(wait_done(&app.client, &app.base(), &doc.id).await);
    }
    let pdf = &done[0];
    assert_eq!(pdf.status, DocumentStatus::Indexed, "{pdf:?}");
    assert_eq!(pdf.kind, "pdf");
    assert_eq!(pdf.pages, Some(3));
    let chunks = pdf.chunks.unwrap();
    assert!(chunks >= 3, "one chunk per page at least: {pdf:?}");
    assert_eq!(pdf.chunks_embedded, chunks);
    assert_eq!(app.vectors(&pdf.id).await, u64::from(chunks));
    let md = &done[1];
    assert_eq!(md.status, DocumentStatus::Indexed, "{md:?}");
    assert_eq!(md.kind, "md");

    // The same bytes again, under another name: recognised, not indexed twice.
    let (status, body) = app
        .upload(&[("copy of guide.md", fixture("garden-guide.md"))])
        .await;
    assert_eq!(status, 202);
    let again = outcomes(body).remove(0);
    assert!(again.duplicate);
    assert_eq!(again.document.unwrap().id, md.id);
    assert_eq!(app.documents().await.len(), 2);
    assert_eq!(app.vectors(&md.id).await, u64::from(md.chunks.unwrap()));
}

/// A bad file is refused at upload (4xx) or fails during ingestion; either way
/// with a reason containing `needle`, and nothing of it stays indexed.
async fn assert_rejected(app: &TestApp, name: &str, bytes: Vec<u8>, status: u16, needle: &str) {
    let (got, body) = app.upload(&[(name, bytes)]).await;
    if got == 202 {
        assert_eq!(
            status, 202,
            "{name} should have been refused at upload: {body}"
        );
        let doc = outcomes(body).remove(0).document.unwrap();
        let doc = wait_done(&app.client, &app.base(), &doc.id).await;
        assert_eq!(doc.status, DocumentStatus::Failed, "{name}: {doc:?}");
        let error = doc.error.clone().unwrap_or_default();
        assert!(
            error.to_lowercase().contains(needle),
            "{name}: {error:?} should mention {needle:?}"
        );
        assert_eq!(app.vectors(&doc.id).await, 0, "{name} left vectors");
    } else {
        assert_eq!(got, status, "{name}: {body}");
        let outcome = outcomes(body).remove(0);
        assert!(outcome.document.is_none());
        let error = outcome.error.unwrap_or_default();
        assert!(
            error.to_lowercase().contains(needle),
            "{name}: {error:?} should mention {needle:?}"
        );
    }
}

#[tokio::test]
async fn every_bad_upload_gets_a_clear_error_and_the_server_stays_up() {
    let up = fake_model().await;
    let app = spawn_app_http(&up.base_url, |s| {
        s.documents.max_file_bytes = 30_000;
        s.documents.max_pages = 2;
    })
    .await;
    assert_rejected(&app, "empty.txt", Vec::new(), 400, "empty").await;
    assert_rejected(&app, "setup.exe", b"MZ\x90\x00binary".to_vec(), 415, "exe").await;
    assert_rejected(&app, "binary.txt", fixture("binary.txt"), 415, "binary").await;
    assert_rejected(&app, "not-word.docx", fixture("not-word.docx"), 415, "docx").await;
    assert_rejected(
        &app,
        "big.docx",
        fixture("harbour-handbook.docx"),
        413,
        "too large",
    )
    .await;
    assert_rejected(
        &app,
        "encrypted.pdf",
        fixture("encrypted.pdf"),
        202,
        "password",
    )
    .await;
    assert_rejected(
        &app,
        "scanned.pdf",
        fixture("scanned.pdf"),
        202,
        "no extractable text",
    )
    .await;
    assert_rejected(
        &app,
        "truncated.pdf",
        fixture("truncated.pdf"),
        202,
        "could not be read",
    )
    .await;
    // Three pages, over the limit of two.
    assert_rejected(
        &app,
        "velloran-survey.pdf",
        fixture("velloran-survey.pdf"),
        202,
        "pages",
    )
    .await;

    // One bad file doesn't sink the others in the same upload.
    let (status, body) = app
        .upload(&[
            ("setup.exe", b"MZ".to_vec()),
            ("garden-guide.md", fixture("garden-guide.md")),
        ])
        .await;
    assert_eq!(status, 202, "{body}");
    let mixed = outcomes(body);
    assert!(mixed[0].error.is_some() && mixed[0].document.is_none());
    let doc = mixed[1].document.clone().unwrap();
    assert_eq!(
        wait_done(&app.client, &app.base(), &doc.id).await.status,
        DocumentStatus::Indexed
    );

    // Malformed requests.
    let not_multipart = app
        .client
        .post(app.url("/api/documents"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(not_multipart.status(), 400);

    // Still serving, and the failures are listed with their reasons.
    let home = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    let listed = app.documents().await;
    assert!(listed
        .iter()
        .filter(|d| d.status == DocumentStatus::Failed)
        .all(|d| d.error.is_some()));
    assert_eq!(
        listed
            .iter()
            .filter(|d| d.status == DocumentStatus::Indexed)
            .count(),
        1
    );
}

#[tokio::test]
async fn deleting_a_document_removes_its_vectors() {
    let up = fake_model().await;
    let app = spawn_app_http(&up.base_url, |_| {}).await;
    let doc = app
        .ingest("garden-guide.md", fixture("garden-guide.md"))
        .await;
    assert_eq!(doc.status, DocumentStatus::Indexed);
    assert!(app.vectors(&doc.id).await > 0);
    let owner = app.owner_of(&doc.id).await.unwrap();

    let deleted = app
        .client
        .delete(app.url(&format!("/api/documents/{}", doc.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(app.index().count(&owner, Some(&doc.id)).await.unwrap(), 0);
    assert!(app.documents().await.is_empty());
    let again = app
        .client
        .get(app.url(&format!("/api/documents/{}", doc.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);

    // Deleted content can be uploaded again and is indexed anew.
    let fresh = app
        .ingest("garden-guide.md", fixture("garden-guide.md"))
        .await;
    assert_ne!(fresh.id, doc.id);
    assert_eq!(fresh.status, DocumentStatus::Indexed);
}

fn sources_of(events: &[ChatEvent]) -> Vec<app::wire::Source> {
    events
        .iter()
        .find_map(|e| match e {
            ChatEvent::Sources { sources, .. } => Some(sources.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn documents_are_private_to_their_owner() {
    let up = fake_model().await;
    let mut app = spawn_app_http(&up.base_url, |_| {}).await;
    let alices = app
        .ingest("velloran-survey.pdf", fixture("velloran-survey.pdf"))
        .await;
    assert_eq!(alices.status, DocumentStatus::Indexed);
    let events = app.chat(None, "Who completed the Velloran bridge?").await;
    let sources = sources_of(&events);
    assert!(
        !sources.is_empty(),
        "the owner's question retrieves: {events:?}"
    );
    assert!(sources.iter().all(|s| s.document_id == alices.id));
    assert!(sources
        .iter()
        .any(|s| s.page == Some(2) && s.text.contains("Mara Quist")));
    // The model was given the passages, numbered.
    let prompt = up.seen.lock().unwrap().requests.last().cloned().unwrap();
    assert!(
        prompt.contains("Mara Quist") && prompt.contains("[1]"),
        "{prompt}"
    );
    // The answer's citation is resolved and highlighted.
    let cited = events
        .iter()
        .find_map(|e| match e {
            ChatEvent::Citations { sources } => Some(sources.clone()),
            _ => None,
        })
        .expect("a citations event");
    assert!(cited[0].cited);

    // Bob: a second browser.
    let alice = std::mem::replace(&mut app.client, client());
    assert!(app.documents().await.is_empty());
    for (method, path) in [
        (
            reqwest::Method::GET,
            format!("/api/documents/{}", alices.id),
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/documents/{}", alices.id),
        ),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{method} {path}");
    }
    let via_server_fn = app
        .post_form("/api/document_delete", &[("id", &alices.id)])
        .await;
    assert_eq!(via_server_fn.status(), 404);

    // Bob's questions never see Alice's passages, with or without his own documents.
    let events = app.chat(None, "Who completed the Velloran bridge?").await;
    assert!(sources_of(&events).is_empty(), "{events:?}");
    let prompt = up.seen.lock().unwrap().requests.last().cloned().unwrap();
    assert!(!prompt.contains("Mara Quist"));
    let bobs = app
        .ingest("garden-guide.md", fixture("garden-guide.md"))
        .await;
    let events = app
        .chat(None, "Who completed the Velloran bridge in 1873?")
        .await;
    let sources = sources_of(&events);
    assert!(!sources.is_empty());
    assert!(
        sources.iter().all(|s| s.document_id == bobs.id),
        "{sources:?}"
    );

    // Alice still has hers.
    app.client = alice;
    let listed = app.documents().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, alices.id);
    assert!(app.vectors(&alices.id).await > 0);
}
