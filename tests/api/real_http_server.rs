//! The HTTP provider against a real OpenAI-compatible server: llama.cpp's
//! server through llama-cpp-python (`python -m llama_cpp.server`), serving
//! the same GGUF. Runs when `RAGCHAT_LLAMA_PYTHON` names a Python that has
//! `llama_cpp.server` (scripts/test.sh sets it up).

use crate::helpers::{answer_text, local_model_or_skip, spawn_app_http};
use app::wire::ChatEvent;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn streams_from_llama_cpp_server() {
    let test = "streams_from_llama_cpp_server";
    let _cores = crate::helpers::exclusive_cpu().await;
    let Some(local) = local_model_or_skip(test) else {
        return;
    };
    let Ok(python) = std::env::var("RAGCHAT_LLAMA_PYTHON") else {
        println!(
            "SKIP {test}: RAGCHAT_LLAMA_PYTHON is not set (no llama-cpp-python server installed)"
        );
        return;
    };
    let has_server = Command::new(&python)
        .args(["-c", "import llama_cpp.server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_server {
        println!("SKIP {test}: {python} cannot import llama_cpp.server");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = KillOnDrop(
        Command::new(&python)
            .args([
                "-m",
                "llama_cpp.server",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .arg("--model")
            .arg(local.gguf_path())
            .args([
                "--n_threads",
                "2",
                "--n_ctx",
                "2048",
                "--model_alias",
                "qwen-local",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting llama_cpp.server"),
    );
    let base_url = format!("http://127.0.0.1:{port}/v1");
    let probe = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while probe
        .get(format!("{base_url}/models"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "llama_cpp.server did not start");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let app = spawn_app_http(&base_url, |s| {
        s.llm.model = Some("qwen-local".into());
        s.llm.temperature = 0.0;
        s.llm.max_tokens = 24;
    })
    .await;
    let events = app
        .chat(None, "Count from 1 to 5, separated by commas.")
        .await;
    let text = answer_text(&events);
    println!("llama.cpp server answered: {text:?}");
    assert!(text.contains('1') && text.contains('5'), "{text:?}");
    let tokens = events
        .iter()
        .filter(|e| matches!(e, ChatEvent::Token { .. }))
        .count();
    assert!(tokens >= 3, "streamed in pieces: {events:?}");
    assert!(
        matches!(events.last(), Some(ChatEvent::Done { .. })),
        "{events:?}"
    );
}
