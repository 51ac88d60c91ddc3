//! The server process is killed (SIGKILL) in the middle of ingesting a
//! document; on restart the document is re-ingested from scratch and the
//! index holds exactly its chunks: nothing half-indexed, no orphans.

use crate::documents::{outcomes, upload, wait_done};
use crate::helpers::client;
use app::wire::{DocumentStatus, DocumentView};
use ragchat::index::VectorIndex;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the real binary on a free port and waits for its "ready" line.
fn start(data_dir: &Path) -> Server {
    start_with(data_dir, &[])
}

/// [`start`] with extra environment (later settings win).
pub fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ragchat"));
    command
        .env("APP__SERVER__BIND", "127.0.0.1:0")
        .env("APP__DATA_DIR", data_dir)
        // Chat isn't used here; pointing it at a server means the GGUF isn't loaded.
        .env("APP__LLM__BASE_URL", "http://127.0.0.1:9/v1")
        .env("APP__DOCUMENTS__EMBED_BATCH", "16")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("the ragchat binary starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(url) = line.split("ready at ").nth(1) {
                    break url.trim().to_string();
                }
            }
            _ => panic!("the server exited before it was ready"),
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, base }
}

/// A long markdown document: hundreds of chunks, so embedding takes a while.
fn long_document() -> Vec<u8> {
    let mut text = String::from("# Survey of the northern rivers\n\n");
    for section in 0..60 {
        text.push_str(&format!("## River section {section}\n\n"));
        for paragraph in 0..8 {
            text.push_str(&format!(
                "Gauge station {section}-{paragraph} recorded a mean flow of {} cubic metres per second \
                 during the spring melt, with sediment loads rising after each storm. The survey team \
                 noted erosion along the eastern bank, willow planting near the footbridge, and a new \
                 fish ladder that salmon used within a week of opening. Local farmers reported that \
                 irrigation intakes silted up twice as often as in the previous decade.\n\n",
                section * 7 + paragraph
            ));
        }
    }
    text.into_bytes()
}

/// The stopped server's database.
async fn database(data_dir: &Path) -> sqlx::AnyPool {
    crate::helpers::connect(&format!(
        "sqlite://{}",
        data_dir.join("ragchat.db").display()
    ))
    .await
}

async fn status(client: &reqwest::Client, base: &str, id: &str) -> DocumentView {
    client
        .get(format!("{base}/api/documents/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn killed_mid_ingestion_resumes_without_orphan_vectors() {
    let _cpu = crate::helpers::exclusive_cpu().await;
    let data = tempfile::TempDir::new().unwrap();
    let browser = client();

    let server = start(data.path());
    let (code, body) = upload(&browser, &server.base, &[("rivers.md", long_document())]).await;
    assert_eq!(code, 202, "{body}");
    let id = outcomes(body).remove(0).document.unwrap().id;

    // Wait until some, but not all, chunks are embedded, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(300);
    let before = loop {
        let doc = status(&browser, &server.base, &id).await;
        if doc.status == DocumentStatus::Embedding && doc.chunks_embedded > 0 {
            break doc;
        }
        assert!(
            doc.status.is_pending(),
            "finished before it could be killed: {doc:?}"
        );
        assert!(
            Instant::now() < deadline,
            "never started embedding: {doc:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    drop(server);
    let total = before.chunks.unwrap();
    assert!(
        before.chunks_embedded < total,
        "killed part-way: {before:?}"
    );

    // Same data dir, same browser (its session is in SQLite).
    let server = start(data.path());
    let after = wait_done(&browser, &server.base, &id).await;
    assert_eq!(after.status, DocumentStatus::Indexed, "{after:?}");
    assert_eq!(after.chunks, Some(total));
    assert_eq!(after.chunks_embedded, total);
    drop(server);

    // With the server gone, open its index and count: exactly one vector per chunk.
    let owner: String = sqlx::query_scalar("SELECT user_id FROM documents WHERE id = $1")
        .bind(&id)
        .fetch_one(&database(data.path()).await)
        .await
        .unwrap();
    let index = ragchat::index::edge::EdgeIndex::open(&data.path().join("qdrant-edge"), 384)
        .await
        .unwrap();
    assert_eq!(
        index.count(&owner, Some(&id)).await.unwrap(),
        u64::from(total)
    );
    assert_eq!(index.count(&owner, None).await.unwrap(), u64::from(total));
}

#[tokio::test]
async fn killed_before_indexing_a_deleted_document_leaves_nothing() {
    let _cpu = crate::helpers::exclusive_cpu().await;
    let data = tempfile::TempDir::new().unwrap();
    let browser = client();
    let server = start(data.path());
    let (_, body) = upload(&browser, &server.base, &[("rivers.md", long_document())]).await;
    let id = outcomes(body).remove(0).document.unwrap().id;
    let deadline = Instant::now() + Duration::from_secs(300);
    while status(&browser, &server.base, &id).await.chunks_embedded == 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Delete while embedding, then kill at once: whichever finished, the
    // restart must end with no document and no vectors.
    let deleted = browser
        .delete(format!("{}/api/documents/{id}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    drop(server);
    let server = start(data.path());
    let gone = browser
        .get(format!("{}/api/documents/{id}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let listed: Vec<DocumentView> = browser
        .get(format!("{}/api/documents", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listed.is_empty());
    drop(server);
    let index = ragchat::index::edge::EdgeIndex::open(&data.path().join("qdrant-edge"), 384)
        .await
        .unwrap();
    let owner: Option<String> = sqlx::query_scalar("SELECT id FROM users LIMIT 1")
        .fetch_optional(&database(data.path()).await)
        .await
        .unwrap();
    assert_eq!(index.count(&owner.unwrap(), None).await.unwrap(), 0);
}
