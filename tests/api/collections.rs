//! Shared collections: who may retrieve from, upload to, replace in and
//! delete from a collection, decided at the moment of each request; document
//! versions that swap in one step, also while questions keep coming; and
//! re-index builds. On SQLite + Qdrant Edge, and on Postgres
//! (`TEST_POSTGRES_URL`) + a Qdrant server (`QDRANT_URL`) when given.

use crate::documents::{fixture, wait_done};
use crate::faults::{upstream, Behaviour, Upstream};
use crate::helpers::{client, read_events, spawn_app_http, TestApp};
use app::wire::{ChatEvent, CollectionList, CollectionView, DocumentStatus, DocumentView, Source};
use ragchat::config::Settings;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const QUESTION: &str = "When was the Velloran bridge completed?";

/// A scripted model that cites source 1.
async fn citing_model() -> Upstream {
    upstream(Behaviour::Stream {
        tokens: vec!["Completed in 1873 [1]."],
        usage: true,
    })
    .await
}

/// The app, on a Qdrant server when `QDRANT_URL` is set (a fresh collection).
async fn spawn(up: &Upstream, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let qdrant = std::env::var("QDRANT_URL").ok().filter(|u| !u.is_empty());
    match &qdrant {
        Some(_) => println!("collections: on the Qdrant server at QDRANT_URL"),
        None => {
            println!("SKIP: collections on a Qdrant server (QDRANT_URL not set); on Qdrant Edge")
        }
    }
    spawn_app_http(&up.base_url, move |s| {
        if let Some(url) = qdrant {
            s.qdrant.url = Some(url);
            s.qdrant.collection = format!("ragchat_test_{}", uuid::Uuid::new_v4().simple());
        }
        tweak(s);
    })
    .await
}

/// One browser: its cookies, and the app's address.
#[derive(Clone)]
struct Browser {
    client: reqwest::Client,
    base: String,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self {
            client: client(),
            base: app.base(),
        }
    }

    async fn sign_up(app: &TestApp, username: &str) -> Self {
        let browser = Self::new(app);
        let response = browser
            .form(
                "/api/sign_up",
                &[
                    ("username", username),
                    ("password", "correct horse battery"),
                ],
            )
            .await;
        assert_eq!(response.status(), 200, "sign up {username}");
        browser
    }

    async fn form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .request(method, format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn create_collection(&self, name: &str) -> CollectionView {
        let response = self
            .json(
                reqwest::Method::POST,
                "/api/collections",
                serde_json::json!({ "name": name }),
            )
            .await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    async fn grant(&self, collection: &str, username: &str, access: &str) -> reqwest::Response {
        self.json(
            reqwest::Method::POST,
            &format!("/api/collections/{collection}/members"),
            serde_json::json!({ "username": username, "access": access }),
        )
        .await
    }

    /// Uploads one file with the given form fields first.
    async fn upload_to(
        &self,
        fields: &[(&str, &str)],
        name: &str,
        bytes: Vec<u8>,
    ) -> reqwest::Response {
        let mut form = reqwest::multipart::Form::new();
        for (key, value) in fields {
            form = form.text(key.to_string(), value.to_string());
        }
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
        );
        self.client
            .post(format!("{}/api/documents", self.base))
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// Uploads a file that must be accepted, and waits for its ingestion.
    async fn ingest(&self, fields: &[(&str, &str)], name: &str, bytes: Vec<u8>) -> DocumentView {
        let response = self.upload_to(fields, name, bytes).await;
        assert_eq!(response.status(), 202, "{:?}", response.text().await);
        let outcomes: Vec<app::wire::UploadOutcome> = response.json().await.unwrap();
        let document = outcomes[0].document.clone().expect("accepted");
        let done = wait_done(&self.client, &self.base, &document.id).await;
        assert_eq!(done.status, DocumentStatus::Indexed, "{done:?}");
        done
    }

    async fn ask(&self, conversation: Option<&str>, text: &str) -> Vec<ChatEvent> {
        let response = self
            .json(
                reqwest::Method::POST,
                "/api/chat",
                serde_json::json!({ "conversation_id": conversation, "text": text }),
            )
            .await;
        assert_eq!(response.status(), 200);
        read_events(response).await
    }

    async fn collections(&self) -> CollectionList {
        self.get("/api/collections").await.json().await.unwrap()
    }
}

/// Every source an answer's events carry: retrieved and cited.
fn sources(events: &[ChatEvent]) -> Vec<Source> {
    events
        .iter()
        .flat_map(|e| match e {
            ChatEvent::Sources { sources, .. } | ChatEvent::Citations { sources } => {
                sources.clone()
            }
            _ => Vec::new(),
        })
        .collect()
}

fn documents_in(events: &[ChatEvent]) -> BTreeSet<String> {
    sources(events).into_iter().map(|s| s.document_id).collect()
}

fn from_cache(events: &[ChatEvent]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, ChatEvent::Model { cached: true, .. }))
}

fn prompts(up: &Upstream) -> Vec<String> {
    up.seen.lock().unwrap().requests.clone()
}

#[tokio::test]
async fn a_shared_collection_answers_its_members_and_nobody_else() {
    let up = citing_model().await;
    let app = spawn(&up, |s| s.cache.enabled = true).await;
    let ada = Browser::sign_up(&app, "ada").await; // the first account: admin
    let bob = Browser::sign_up(&app, "bob").await;
    let carol = Browser::sign_up(&app, "carol").await;

    let bridges = ada.create_collection("Bridges").await;
    let document = ada
        .ingest(
            &[("collection", &bridges.id)],
            "velloran-survey.pdf",
            fixture("velloran-survey.pdf"),
        )
        .await;
    assert_eq!(document.collection_id, bridges.id);
    assert_eq!(document.collection_name, "Bridges");
    assert_eq!(ada.grant(&bridges.id, "bob", "read").await.status(), 200);

    // The member retrieves it, with the collection named in the citation.
    let answer = bob.ask(None, QUESTION).await;
    let cited = sources(&answer);
    assert!(
        cited.iter().any(|s| s.document_id == document.id),
        "{answer:?}"
    );
    assert!(cited
        .iter()
        .all(|s| s.collection.as_deref() == Some("Bridges")));
    assert!(answer
        .iter()
        .any(|e| matches!(e, ChatEvent::Citations { sources } if sources.iter().any(|s| s.cited))));

    // A non-member never does: not in sources, not from the cache (bob's
    // answer to the same question is cached), not in the prompt.
    let before = prompts(&up).len();
    let refused = carol.ask(None, QUESTION).await;
    assert!(sources(&refused).is_empty(), "{refused:?}");
    assert!(!from_cache(&refused));
    let sent = prompts(&up);
    assert_eq!(sent.len(), before + 1, "carol's question went to the model");
    // A word of the passage that the question doesn't have.
    let marker = cited[0]
        .text
        .split(|c: char| !c.is_alphabetic())
        .find(|w| w.len() >= 7 && !QUESTION.contains(w))
        .expect("a long word in the passage");
    assert!(
        sent[before - 1].contains(marker),
        "bob's prompt holds the passage"
    );
    assert!(
        !sent.last().unwrap().contains(marker),
        "carol's prompt holds the document"
    );

    // Nor through the API, on any verb.
    assert_not_found(&carol, &bridges.id, &document.id).await;
    assert!(!carol
        .collections()
        .await
        .collections
        .iter()
        .any(|c| c.id == bridges.id));

    // Bob asks again: served from the cache while he is a member...
    let again = bob.ask(None, QUESTION).await;
    assert!(from_cache(&again));
    // ...and removing him cuts him off on the very next question, cache included.
    let removed = ada
        .delete(&format!("/api/collections/{}/members/bob", bridges.id))
        .await;
    assert_eq!(removed.status(), 200);
    let after = bob.ask(None, QUESTION).await;
    // (It may come from the cache, but only as the ungrounded answer Carol
    // got: with no source and no citation.)
    assert!(sources(&after).is_empty(), "{after:?}");
    assert_not_found(&bob, &bridges.id, &document.id).await;
}

/// Every verb on a collection and its document the browser can't read.
async fn assert_not_found(who: &Browser, collection: &str, document: &str) {
    use reqwest::Method;
    let body = serde_json::json!({});
    let checks = [
        who.get(&format!("/api/collections/{collection}")).await,
        who.get(&format!("/api/collections/{collection}/documents"))
            .await,
        who.get(&format!("/api/documents/{document}")).await,
        who.get(&format!("/api/documents/{document}/versions"))
            .await,
        who.get(&format!("/api/documents?collection={collection}"))
            .await,
        who.delete(&format!("/api/documents/{document}")).await,
        who.delete(&format!("/api/collections/{collection}")).await,
        who.json(
            Method::PATCH,
            &format!("/api/collections/{collection}"),
            serde_json::json!({ "name": "mine" }),
        )
        .await,
        who.grant(collection, "carol", "write").await,
        who.delete(&format!("/api/collections/{collection}/members/ada"))
            .await,
        who.json(
            Method::POST,
            &format!("/api/collections/{collection}/reindex"),
            body,
        )
        .await,
        who.upload_to(
            &[("collection", collection)],
            "x.txt",
            b"sneaking in".to_vec(),
        )
        .await,
        who.upload_to(&[("replace", document)], "x.txt", b"replacing it".to_vec())
            .await,
        who.json(
            Method::POST,
            "/api/chat",
            serde_json::json!({ "conversation_id": null, "text": "hi", "scope": [collection] }),
        )
        .await,
    ];
    for (n, response) in checks.into_iter().enumerate() {
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 404, "check {n}: {text}");
        assert!(
            !text.contains("Velloran") && !text.contains("Bridges"),
            "check {n} leaks: {text}"
        );
    }
}

#[tokio::test]
async fn read_and_write_access_are_enforced_on_upload_replace_and_delete() {
    let up = citing_model().await;
    let app = spawn(&up, |_| {}).await;
    let ada = Browser::sign_up(&app, "ada").await;
    let bob = Browser::sign_up(&app, "bob").await;
    let handbook = ada.create_collection("Handbook").await;
    let original = ada
        .ingest(
            &[("collection", &handbook.id)],
            "garden-guide.md",
            fixture("garden-guide.md"),
        )
        .await;
    assert_eq!(ada.grant(&handbook.id, "bob", "read").await.status(), 200);

    // Read: sees it, can't change it.
    let listed: Vec<DocumentView> = bob
        .get(&format!("/api/collections/{}/documents", handbook.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].can_write);
    let upload = bob
        .upload_to(
            &[("collection", &handbook.id)],
            "notes.txt",
            b"bob's notes on pruning".to_vec(),
        )
        .await;
    assert_eq!(upload.status(), 403);
    let replace = bob
        .upload_to(
            &[("replace", &original.id)],
            "garden-guide.md",
            b"vandalised".to_vec(),
        )
        .await;
    assert_eq!(replace.status(), 403);
    assert_eq!(
        bob.delete(&format!("/api/documents/{}", original.id))
            .await
            .status(),
        403
    );
    // Managing members needs more than read (or write).
    assert_eq!(bob.grant(&handbook.id, "bob", "write").await.status(), 403);

    // Write: uploads, replaces (a new version) and deletes.
    assert_eq!(ada.grant(&handbook.id, "bob", "write").await.status(), 200);
    assert_eq!(bob.grant(&handbook.id, "ada", "read").await.status(), 403);
    let notes = bob
        .ingest(
            &[("collection", &handbook.id)],
            "notes.txt",
            b"Prune the orchard's apple trees in late winter.".to_vec(),
        )
        .await;
    assert_eq!(notes.collection_id, handbook.id);
    let v2 = bob
        .ingest(
            &[("replace", &original.id)],
            "anything.md",
            b"# Garden guide\n\nWater the roses every morning before nine.".to_vec(),
        )
        .await;
    assert_eq!(
        (v2.version, v2.lineage_id.as_str(), v2.name.as_str()),
        (2, original.id.as_str(), "garden-guide.md")
    );
    let versions: Vec<DocumentView> = bob
        .get(&format!("/api/documents/{}/versions", v2.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| (v.version, v.superseded))
            .collect::<Vec<_>>(),
        [(2, false), (1, true)]
    );
    // An upload under the same name is a new version too.
    let v3 = ada
        .ingest(
            &[("collection", &handbook.id)],
            "garden-guide.md",
            b"# Garden guide\n\nMulch the beds in autumn.".to_vec(),
        )
        .await;
    assert_eq!(v3.version, 3);
    assert_eq!(
        bob.delete(&format!("/api/documents/{}", v3.id))
            .await
            .status(),
        204
    );
    // Every version went with it.
    assert_eq!(
        ada.get(&format!("/api/documents/{}", original.id))
            .await
            .status(),
        404
    );

    // The private collection of another account is 404, even to an admin.
    let bobs_own = bob
        .ingest(
            &[],
            "diary.txt",
            b"My private diary about tomatoes.".to_vec(),
        )
        .await;
    assert_ne!(bobs_own.collection_id, handbook.id);
    assert_eq!(
        ada.get(&format!("/api/documents/{}", bobs_own.id))
            .await
            .status(),
        404
    );
    assert_eq!(
        ada.get(&format!("/api/collections/{}", bobs_own.collection_id))
            .await
            .status(),
        404
    );

    // Bob retrieves the shared notes while the collection exists...
    let before = bob
        .ask(None, "When should the apple trees be pruned?")
        .await;
    assert!(documents_in(&before).contains(&notes.id), "{before:?}");
    // ...and deleting the collection: gone from the next question and every verb.
    assert_eq!(
        ada.delete(&format!("/api/collections/{}", handbook.id))
            .await
            .status(),
        204
    );
    let after = bob
        .ask(None, "When should the apple trees be pruned?")
        .await;
    assert!(
        documents_in(&after).iter().all(|d| *d == bobs_own.id),
        "{after:?}"
    );
    assert_eq!(
        bob.get(&format!("/api/documents/{}", notes.id))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn api_keys_act_as_their_account_but_only_admins_keys_grant_access() {
    let up = citing_model().await;
    let app = spawn(&up, |_| {}).await;
    let ada = Browser::sign_up(&app, "ada").await;
    let bob = Browser::sign_up(&app, "bob").await;
    let key = |who: &Browser| {
        let who = who.clone();
        async move {
            let made: app::wire::NewApiKey = who
                .form("/api/keys/create", &[("name", "script")])
                .await
                .json()
                .await
                .unwrap();
            made.secret
        }
    };
    let (ada_key, bob_key) = (key(&ada).await, key(&bob).await);
    // Bob may make shared collections once the admin allows it.
    let refused = reqwest::Client::new()
        .post(app.url("/api/collections"))
        .bearer_auth(&bob_key)
        .json(&serde_json::json!({ "name": "Bob's" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let session: app::wire::SessionView = bob.form("/api/session", &[]).await.json().await.unwrap();
    let bob_id = session.account.unwrap().user_id;
    assert_eq!(
        ada.form(
            "/api/allow_sharing",
            &[("user_id", &bob_id), ("allowed", "true")]
        )
        .await
        .status(),
        200
    );
    let made = reqwest::Client::new()
        .post(app.url("/api/collections"))
        .bearer_auth(&bob_key)
        .json(&serde_json::json!({ "name": "Bob's" }))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let bobs: CollectionView = made.json().await.unwrap();
    // His key uploads into it, but can't hand it out...
    let form = reqwest::multipart::Form::new()
        .text("collection", bobs.id.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"Bob's notes on the harbour.".to_vec())
                .file_name("notes.txt"),
        );
    let uploaded = reqwest::Client::new()
        .post(app.url("/api/documents"))
        .bearer_auth(&bob_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 202);
    let everyone = reqwest::Client::new()
        .patch(app.url(&format!("/api/collections/{}", bobs.id)))
        .bearer_auth(&bob_key)
        .json(&serde_json::json!({ "everyone": "read" }))
        .send()
        .await
        .unwrap();
    assert_eq!(everyone.status(), 403);
    let grant = |secret: &str| {
        reqwest::Client::new()
            .post(app.url(&format!("/api/collections/{}/members", bobs.id)))
            .bearer_auth(secret)
            .json(&serde_json::json!({ "username": "ada", "access": "read" }))
            .send()
    };
    assert_eq!(grant(&bob_key).await.unwrap().status(), 403);
    // ...his browser can, and an admin's key can.
    assert_eq!(bob.grant(&bobs.id, "ada", "read").await.status(), 200);
    assert_eq!(grant(&ada_key).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_conversation_searches_the_collections_it_chose() {
    let up = citing_model().await;
    let app = spawn(&up, |_| {}).await;
    let ada = Browser::sign_up(&app, "ada").await;
    let bob = Browser::sign_up(&app, "bob").await;
    let shared = ada.create_collection("Everyone's").await;
    let everyone = ada
        .json(
            reqwest::Method::PATCH,
            &format!("/api/collections/{}", shared.id),
            serde_json::json!({ "everyone": "read" }),
        )
        .await;
    assert_eq!(everyone.status(), 200);
    let survey = ada
        .ingest(
            &[("collection", &shared.id)],
            "velloran-survey.pdf",
            fixture("velloran-survey.pdf"),
        )
        .await;
    let own = bob.ingest(&[], "orchard.txt", fixture("orchard.txt")).await;

    // Every signed-in account reads an everyone-collection; all are searched by default.
    let all = bob.ask(None, QUESTION).await;
    assert!(documents_in(&all).contains(&survey.id));
    // A conversation limited to bob's own collection never sees it.
    let scoped = bob
        .json(
            reqwest::Method::POST,
            "/api/chat",
            serde_json::json!({ "conversation_id": null, "text": QUESTION, "scope": [own.collection_id] }),
        )
        .await;
    assert_eq!(scoped.status(), 200);
    let scoped = read_events(scoped).await;
    assert!(!documents_in(&scoped).contains(&survey.id), "{scoped:?}");
    let (conversation, _) = crate::helpers::started(&scoped);
    let view: app::wire::ConversationView = bob
        .form("/api/conversation", &[("id", &conversation)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view.scope, Some(vec![own.collection_id.clone()]));
    let follow_up = bob.ask(Some(&conversation), QUESTION).await;
    assert!(!documents_in(&follow_up).contains(&survey.id));
    // Widening it again, and a scope naming someone else's collection is 404.
    let widen = bob
        .json(
            reqwest::Method::POST,
            "/api/conversation_scope",
            serde_json::json!({ "conversation_id": conversation, "scope": null }),
        )
        .await;
    assert_eq!(widen.status(), 200);
    assert!(documents_in(&bob.ask(Some(&conversation), QUESTION).await).contains(&survey.id));
    let adas_own = ada
        .collections()
        .await
        .collections
        .into_iter()
        .find(|c| c.private)
        .unwrap();
    let foreign = bob
        .json(
            reqwest::Method::POST,
            "/api/conversation_scope",
            serde_json::json!({ "conversation_id": conversation, "scope": [adas_own.id] }),
        )
        .await;
    assert_eq!(foreign.status(), 404);

    // Guests don't read everyone-collections.
    let guest = Browser::new(&app);
    let guest_answer = guest.ask(None, QUESTION).await;
    assert!(sources(&guest_answer).is_empty());
}

/// Questions asked without pause while a new version of their document is
/// indexed: each answer is grounded in exactly one version, the old one
/// until the swap and the new one after it; then the old vectors go.
#[tokio::test]
async fn a_new_version_swaps_in_under_load() {
    let up = citing_model().await;
    let app = spawn(&up, |s| s.documents.retire_after_secs = 1).await;
    let ada = Browser::sign_up(&app, "ada").await;
    let version = |colour: &str, marker: &str| {
        let mut text =
            format!("# Harbour light\n\nThe harbour light at Velloran shines {colour}. ");
        for n in 0..60 {
            text.push_str(&format!("Paragraph {n} of the {marker} edition notes the keeper's rounds and the {colour} lamp. "));
        }
        text.into_bytes()
    };
    let v1 = ada.ingest(&[], "harbour.md", version("red", "first")).await;
    let question = "What colour does the Velloran harbour light shine?";

    let stop = Arc::new(AtomicBool::new(false));
    let mut askers = Vec::new();
    for _ in 0..2 {
        let (ada, stop) = (ada.clone(), stop.clone());
        askers.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let asked = Instant::now();
                let events = ada.ask(None, question).await;
                answers.push((asked, documents_in(&events)));
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let response = ada
        .upload_to(&[], "harbour.md", version("green", "second"))
        .await;
    assert_eq!(response.status(), 202);
    let outcomes: Vec<app::wire::UploadOutcome> = response.json().await.unwrap();
    let v2_id = outcomes[0].document.clone().unwrap().id;
    let v2 = wait_done(&ada.client, &ada.base, &v2_id).await;
    let swapped = Instant::now();
    assert_eq!(
        (v2.status, v2.version, v2.lineage_id.clone()),
        (DocumentStatus::Indexed, 2, v1.id.clone())
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for asker in askers {
        answers.extend(asker.await.unwrap());
    }
    let one = |id: &str| BTreeSet::from([id.to_owned()]);
    let (mut old, mut new) = (0, 0);
    for (asked, documents) in &answers {
        assert!(
            *documents == one(&v1.id) || *documents == one(&v2.id),
            "an answer grounded in {documents:?}, not exactly one version"
        );
        if *documents == one(&v1.id) {
            old += 1;
            assert!(*asked < swapped, "the old version answered after the swap");
        } else {
            new += 1;
        }
    }
    assert!(old > 0 && new > 0, "{old} answers from v1, {new} from v2");
    println!(
        "swap under load: {} answers, {old} from v1, {new} from v2",
        answers.len()
    );

    // The replaced version stays listed (votes point at it); its vectors go.
    let versions: Vec<DocumentView> = ada
        .get(&format!("/api/documents/{}/versions", v1.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| (v.version, v.superseded))
            .collect::<Vec<_>>(),
        [(2, false), (1, true)]
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while app
        .index()
        .count(&v1.collection_id, Some(&v1.id))
        .await
        .unwrap()
        > 0
    {
        assert!(
            Instant::now() < deadline,
            "the old version's vectors stayed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        app.index()
            .count(&v1.collection_id, Some(&v2.id))
            .await
            .unwrap()
            > 0
    );
}

#[tokio::test]
async fn a_reindex_rebuilds_in_the_background_with_the_same_swap() {
    let up = citing_model().await;
    let app = spawn(&up, |_| {}).await;
    let ada = Browser::sign_up(&app, "ada").await;
    let bob = Browser::sign_up(&app, "bob").await;
    let shared = ada.create_collection("Surveys").await;
    let built = ada
        .ingest(
            &[("collection", &shared.id)],
            "velloran-survey.pdf",
            fixture("velloran-survey.pdf"),
        )
        .await;
    assert!(
        built
            .embedder
            .as_deref()
            .is_some_and(|e| e.contains("@384")),
        "{built:?}"
    );
    assert!(built.chunker.is_some());
    let path = format!("/api/collections/{}/reindex", shared.id);
    // Nothing is stale, so a plain re-index queues nothing; `all` rebuilds.
    let stale: serde_json::Value = ada
        .json(reqwest::Method::POST, &path, serde_json::json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stale["queued"], 0);
    let all = ada
        .json(
            reqwest::Method::POST,
            &path,
            serde_json::json!({ "all": true }),
        )
        .await;
    assert_eq!(all.status(), 202);
    assert_eq!(all.json::<serde_json::Value>().await.unwrap()["queued"], 1);
    // Members aren't admins; strangers don't see it.
    assert_eq!(ada.grant(&shared.id, "bob", "write").await.status(), 200);
    assert_eq!(
        bob.json(reqwest::Method::POST, &path, serde_json::json!({}))
            .await
            .status(),
        403
    );

    let deadline = Instant::now() + Duration::from_secs(300);
    let rebuilt = loop {
        let answer = ada.ask(None, QUESTION).await;
        let documents = documents_in(&answer);
        assert_eq!(documents.len(), 1, "one build answers: {documents:?}");
        let versions: Vec<DocumentView> = ada
            .get(&format!("/api/documents/{}/versions", built.id))
            .await
            .json()
            .await
            .unwrap();
        if let Some(new) = versions
            .iter()
            .find(|v| v.id != built.id && v.status == DocumentStatus::Indexed && !v.superseded)
        {
            break new.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the rebuild never finished: {versions:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (rebuilt.version, rebuilt.lineage_id.as_str()),
        (1, built.id.as_str())
    );
    assert_eq!(
        documents_in(&ada.ask(None, QUESTION).await),
        BTreeSet::from([rebuilt.id.clone()])
    );
}
