//! Tests on the real server binary: killed (SIGKILL) in the middle of
//! ingesting, it re-ingests from scratch on restart and the index holds
//! exactly the stored chunks (nothing half-indexed, no orphans); fed
//! decompression bombs, it stays up with bounded memory and fails them for
//! good.

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
    /// What the server printed on stderr before it was ready.
    pub startup_lines: Vec<String>,
}

impl Server {
    /// The server's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server is running");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status");
        kib * 1024
    }
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
    let mut startup_lines = Vec::new();
    let base = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(url) = line.split("ready at ").nth(1) {
                    break url.trim().to_string();
                }
                startup_lines.push(line);
            }
            _ => panic!(
                "the server exited before it was ready:\n{}",
                startup_lines.join("\n")
            ),
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        base,
        startup_lines,
    }
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

/// `n` bytes of spaces, zlib-compressed (about a thousandth of `n`).
fn deflated_spaces(n: u64) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![b' '; 1 << 20];
    let mut left = n;
    while left > 0 {
        let take = left.min(block.len() as u64) as usize;
        encoder.write_all(&block[..take]).unwrap();
        left -= take as u64;
    }
    encoder.finish().unwrap()
}

/// ASCII85 as PDF's ASCII85Decode reads it (`z` for zero groups, `~>` at the end).
fn ascii85(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 5 / 4 + 2);
    for chunk in data.chunks(4) {
        let mut group = [0u8; 4];
        group[..chunk.len()].copy_from_slice(chunk);
        let mut value = u32::from_be_bytes(group);
        if value == 0 && chunk.len() == 4 {
            out.push(b'z');
            continue;
        }
        let mut digits = [0u8; 5];
        for digit in digits.iter_mut().rev() {
            *digit = (value % 85) as u8 + b'!';
            value /= 85;
        }
        out.extend_from_slice(&digits[..chunk.len() + 1]);
    }
    out.extend_from_slice(b"~>");
    out
}

/// A one-page PDF from numbered objects (1: catalog, 2: pages, 3: page),
/// with a correct cross-reference table.
fn pdf_from_objects(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        pdf.extend_from_slice(body);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

fn stream_object(dictionary: &str, data: &[u8]) -> Vec<u8> {
    let mut object = format!("<< {dictionary} /Length {} >>\nstream\n", data.len()).into_bytes();
    object.extend_from_slice(data);
    object.extend_from_slice(b"\nendstream");
    object
}

const INFLATED: u64 = 4 << 30;

/// An object stream (inflated by the PDF library while it loads the file,
/// before any check of ours) that inflates to 4 GiB.
fn object_stream_bomb() -> Vec<u8> {
    pdf_from_objects(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>".to_vec(),
        stream_object(
            "/Type /ObjStm /N 1 /First 8 /Filter /FlateDecode",
            &deflated_spaces(INFLATED),
        ),
    ])
}

/// A page whose content stream, filtered ASCII85 then Flate, inflates to 4 GiB.
fn ascii85_content_bomb() -> Vec<u8> {
    pdf_from_objects(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>".to_vec(),
        stream_object(
            "/Filter [/ASCII85Decode /FlateDecode]",
            &ascii85(&deflated_spaces(INFLATED)),
        ),
    ])
}

#[tokio::test]
async fn decompression_bombs_fail_with_a_reason_in_bounded_memory_and_stay_failed() {
    let _cpu = crate::helpers::exclusive_cpu().await;
    let bombs = tokio::task::spawn_blocking(|| {
        [
            ("objstm.pdf", object_stream_bomb()),
            ("ascii85.pdf", ascii85_content_bomb()),
        ]
    })
    .await
    .unwrap();
    for (name, bytes) in &bombs {
        assert!(bytes.len() < 16 << 20, "{name} is {} bytes", bytes.len());
    }
    let data = tempfile::TempDir::new().unwrap();
    let browser = client();
    let server = start(data.path());
    let baseline = server.peak_rss();
    let mut ids = Vec::new();
    for (name, bytes) in &bombs {
        let (code, body) = upload(&browser, &server.base, &[(name, bytes.clone())]).await;
        assert_eq!(code, 202, "{body}");
        ids.push(outcomes(body).remove(0).document.unwrap().id);
    }
    for id in &ids {
        let doc = wait_done(&browser, &server.base, id).await;
        assert_eq!(doc.status, DocumentStatus::Failed, "{doc:?}");
        let reason = doc.error.unwrap_or_default();
        assert!(
            reason.contains("too large") && reason.contains("MiB of memory"),
            "the reason names the limit: {reason}"
        );
    }
    let growth = server.peak_rss().saturating_sub(baseline);
    println!(
        "peak RSS {} MiB at start, grew by {} MiB while failing two 4 GiB bombs",
        baseline >> 20,
        growth >> 20
    );
    assert!(
        growth < 512 << 20,
        "the server's peak RSS grew by {} MiB",
        growth >> 20
    );

    // A restart leaves them failed: nothing is queued or parsed again.
    drop(server);
    let server = start(data.path());
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in &ids {
        let doc = status(&browser, &server.base, id).await;
        assert_eq!(doc.status, DocumentStatus::Failed, "{doc:?}");
    }
    drop(server);
    let requeued: Vec<i64> = sqlx::query_scalar("SELECT interruptions FROM documents ORDER BY id")
        .fetch_all(&database(data.path()).await)
        .await
        .unwrap();
    assert_eq!(requeued, vec![0, 0]);
}

/// Twenty documents of several kinds, some of them unreadable.
fn twenty_documents() -> Vec<(String, Vec<u8>)> {
    let mut docs = Vec::new();
    for i in 0..20 {
        let (name, bytes) = match i % 5 {
            0 => {
                let mut survey = long_document();
                survey.extend_from_slice(format!("\n\nSurvey copy {i}.\n").as_bytes());
                (format!("survey-{i}.md"), survey)
            }
            1 => (
                format!("notes-{i}.txt"),
                format!("Field notes {i}.\n\nThe heron colony on island {i} counted {} nests this spring, up from last year.\n", 40 + i)
                    .repeat(30)
                    .into_bytes(),
            ),
            2 => (
                format!("page-{i}.html"),
                format!("<html><body><h1>Bulletin {i}</h1><p>Ferry timetable {i}: departures every {} minutes in summer.</p></body></html>", 20 + i)
                    .into_bytes(),
            ),
            3 => (
                format!("table-{i}.csv"),
                format!("station,flow\nS{i},{}\nT{i},{}\n", i * 3, i * 5).into_bytes(),
            ),
            // Says it is a PDF; isn't one past the header.
            _ => (format!("broken-{i}.pdf"), format!("%PDF-1.7\n garbage {i}").into_bytes()),
        };
        docs.push((name, bytes));
    }
    docs
}

#[tokio::test]
async fn killed_twice_while_ingesting_twenty_documents_every_one_ends_accounted_for() {
    let _cpu = crate::helpers::exclusive_cpu().await;
    let data = tempfile::TempDir::new().unwrap();
    let browser = client();
    let mut server = start(data.path());
    let mut ids = Vec::new();
    for (name, bytes) in twenty_documents() {
        let (code, body) = upload(&browser, &server.base, &[(&name, bytes)]).await;
        assert_eq!(code, 202, "{body}");
        ids.push(outcomes(body).remove(0).document.unwrap().id);
    }
    // Twice: let ingestion get under way, then kill -9 mid-flight.
    for round in 0..2 {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let mut embedding = false;
            let mut pending = 0;
            for id in &ids {
                let doc = status(&browser, &server.base, id).await;
                embedding |= doc.status == DocumentStatus::Embedding && doc.chunks_embedded > 0;
                pending += usize::from(doc.status.is_pending());
            }
            if embedding || pending == 0 {
                assert!(
                    pending > 0,
                    "round {round}: everything finished before the kill"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: nothing is embedding"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(server);
        server = start(data.path());
    }
    let mut indexed_chunks = 0u64;
    for id in &ids {
        let doc = wait_done(&browser, &server.base, id).await;
        match doc.status {
            DocumentStatus::Indexed => indexed_chunks += u64::from(doc.chunks.unwrap()),
            DocumentStatus::Failed => assert!(
                doc.error.as_deref().is_some_and(|e| !e.is_empty()),
                "a failed document says why: {doc:?}"
            ),
            other => panic!("{} ended {other:?}", doc.name),
        }
    }
    drop(server);
    let db = database(data.path()).await;
    let stored: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(chunks), 0) AS BIGINT) FROM documents WHERE status = 'indexed'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(stored as u64, indexed_chunks);
    let owner: String = sqlx::query_scalar("SELECT user_id FROM documents LIMIT 1")
        .fetch_one(&db)
        .await
        .unwrap();
    let index = ragchat::index::edge::EdgeIndex::open(&data.path().join("qdrant-edge"), 384)
        .await
        .unwrap();
    assert_eq!(index.count(&owner, None).await.unwrap(), indexed_chunks);
    println!("20 documents, killed twice: {indexed_chunks} passages stored and indexed");
}

/// On a server strangers can reach, whoever signs up first is an ordinary
/// user; the admin is made with the one-time code printed at start-up.
#[tokio::test]
async fn the_first_admin_of_a_public_server_needs_the_printed_setup_code() {
    let data = tempfile::TempDir::new().unwrap();
    let server = start_with(data.path(), &[("APP__AUTH__FIRST_ADMIN", "setup_code")]);
    let code = server
        .startup_lines
        .iter()
        .map(|line| line.trim())
        .find(|line| line.len() == 24 && line.matches('-').count() == 4)
        .unwrap_or_else(|| panic!("no setup code in {:#?}", server.startup_lines))
        .to_owned();
    let sign_up = |browser: &reqwest::Client, name: &str, code: Option<&str>| {
        let mut form = vec![
            ("username", name.to_owned()),
            ("password", "correct horse".to_owned()),
        ];
        if let Some(code) = code {
            form.push(("setup_code", code.to_owned()));
        }
        browser
            .post(format!("{}/api/sign_up", server.base))
            .form(&form)
            .send()
    };
    let session =
        |browser: &reqwest::Client| browser.post(format!("{}/api/session", server.base)).send();
    let stranger = client();
    let pending: app::wire::SessionView = session(&stranger).await.unwrap().json().await.unwrap();
    assert!(pending.setup_code_pending);
    let first: app::wire::AccountView = sign_up(&stranger, "eve", None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        first.role,
        app::wire::UserRole::User,
        "first come is not admin"
    );
    let wrong = sign_up(&client(), "mallory", Some("0000-0000-0000-0000-0000"))
        .await
        .unwrap();
    assert_eq!(wrong.status(), 400);
    let operator = client();
    let admin: app::wire::AccountView = sign_up(&operator, "ops", Some(&code.to_uppercase()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(admin.role, app::wire::UserRole::Admin);
    // Used up: the same code makes nobody else admin.
    let again = sign_up(&client(), "trent", Some(&code)).await.unwrap();
    assert_eq!(again.status(), 400);
    let done: app::wire::SessionView = session(&client()).await.unwrap().json().await.unwrap();
    assert!(!done.setup_code_pending);
    // A restart with an admin prints no code.
    drop(server);
    let server = start_with(data.path(), &[("APP__AUTH__FIRST_ADMIN", "setup_code")]);
    assert!(
        !server
            .startup_lines
            .iter()
            .any(|line| line.contains("setup code")),
        "{:#?}",
        server.startup_lines
    );
}

/// With the default log filter, starting the server (embedded model,
/// embedded index) logs nothing at WARN or above: nothing an operator would
/// have to look into.
#[tokio::test]
async fn a_default_start_logs_no_warnings() {
    let Some(local) = crate::helpers::local_model_or_skip("a_default_start_logs_no_warnings")
    else {
        return;
    };
    let _cpu = crate::helpers::exclusive_cpu().await;
    let data = tempfile::TempDir::new().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ragchat"))
        .env("APP__SERVER__BIND", "127.0.0.1:0")
        .env("APP__DATA_DIR", data.path())
        .env("APP__LLM__LOCAL__MODEL_PATH", local.gguf_path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the ragchat binary starts");
    let stdout = child.stdout.take().unwrap();
    let logs = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        match stderr.next() {
            Some(Ok(line)) if line.contains("ready at") => break,
            Some(Ok(_)) => {}
            _ => panic!("the server exited before it was ready"),
        }
    }
    // Let anything logged right after start-up arrive, then stop it.
    std::thread::sleep(Duration::from_secs(1));
    let _ = child.kill();
    let _ = child.wait();
    let logs = logs.join().unwrap();
    assert!(!logs.is_empty(), "the server logs JSON lines on stdout");
    let loud: Vec<&String> = logs
        .iter()
        .filter(|line| line.contains(r#""level":"WARN""#) || line.contains(r#""level":"ERROR""#))
        .collect();
    assert!(loud.is_empty(), "start-up warnings: {loud:#?}");
}
