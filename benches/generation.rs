//! Generation speed of the embedded model against llama.cpp itself
//! (llama-cpp-python, 2 threads, same GGUF, same prompt, greedy decoding).
//!
//!   scripts/bench.sh            # sets up llama-cpp-python, then runs this
//!
//! Prints prompt-processing tokens/s, generation tokens/s and time to first
//! token (medians over several runs) for both, and the ratios.

use ragchat::config::LocalSettings;
use ragchat::llm::local::{Engine, GenerationStats};
use ragchat::llm::{CompletionRequest, PromptMessage, PromptRole};
use std::process::Command;

const RUNS: usize = 5;
const MAX_TOKENS: u32 = 128;
const THREADS: i32 = 2;

const DOCUMENT: &str = "Write-ahead logging (WAL) is a family of techniques for providing atomicity and durability \
in database systems. Changes are first recorded in a log, which must be written to stable storage, before the changes \
are written to the database. In a system using WAL, all modifications are written to a log before they are applied. \
Usually both redo and undo information is stored in the log. The purpose of this can be illustrated by an example. \
Imagine a program that is in the middle of performing some operation when the machine it is running on loses power. \
Upon restart, that program might need to know whether the operation it was performing succeeded, succeeded partially, \
or failed. If a write-ahead log is used, the program can check this log and compare what it was supposed to be doing \
when it unexpectedly lost power to what was actually done. On the basis of this comparison, the program could decide \
to undo what it had started, complete what it had started, or keep things as they are. After a certain amount of \
operations, the program should perform a checkpoint, writing all the changes specified in the WAL to the database and \
clearing the log. WAL allows updates of a database to be done in-place. Another way to implement atomic updates is \
with shadow paging, which is not in-place. The main advantage of doing updates in-place is that it reduces the need \
to modify indexes and block lists. SQLite in WAL mode lets readers continue while a single writer appends to the \
log, and a checkpoint later copies pages back into the main database file. PostgreSQL calls its log the WAL as well \
and uses it for crash recovery, point-in-time recovery and streaming replication to standby servers.";

fn request() -> CompletionRequest {
    CompletionRequest {
        messages: vec![
            PromptMessage { role: PromptRole::System, content: "You are a helpful assistant.".into() },
            PromptMessage {
                role: PromptRole::User,
                content: format!("{DOCUMENT}\n\nExplain in detail, as a numbered list of at least ten points, how write-ahead logging works and why databases use it."),
            },
        ],
        max_tokens: MAX_TOKENS,
        temperature: 0.0,
        top_p: None,
        stop: Vec::new(),
    }
}

#[derive(Debug, Clone, Copy)]
struct Figures {
    prompt_tokens: usize,
    pp_tps: f64,
    gen_tps: f64,
    ttft_ms: f64,
    generated: usize,
}

fn figures(stats: &GenerationStats) -> Figures {
    let first = stats.first_token_ms.unwrap_or(stats.total_ms);
    let gen_ms = stats.total_ms - first;
    Figures {
        prompt_tokens: stats.prompt_tokens,
        pp_tps: stats.prompt_tokens as f64 * 1000.0 / stats.prompt_ms,
        gen_tps: if gen_ms > 0.0 {
            (stats.completion_tokens.saturating_sub(1)) as f64 * 1000.0 / gen_ms
        } else {
            0.0
        },
        ttft_ms: first,
        generated: stats.completion_tokens,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn medians(runs: &[Figures]) -> Figures {
    Figures {
        prompt_tokens: runs[0].prompt_tokens,
        pp_tps: median(runs.iter().map(|r| r.pp_tps).collect()),
        gen_tps: median(runs.iter().map(|r| r.gen_tps).collect()),
        ttft_ms: median(runs.iter().map(|r| r.ttft_ms).collect()),
        generated: runs[0].generated,
    }
}

fn main() {
    let settings = LocalSettings::default();
    let path = settings.gguf_path();
    if !path.is_file() {
        println!(
            "SKIP generation bench: {} missing (run scripts/fetch-models.sh)",
            path.display()
        );
        return;
    }
    let (engine, params) = Engine::open(path.clone(), THREADS, 4096, 512).expect("model loads");
    let mut ctx = engine.context(&params).expect("context");
    let request = request();
    let prompt = engine.render_prompt(&request.messages).expect("template");
    let never = || false;
    let mut runs = Vec::new();
    let mut answer = String::new();
    for run in 0..=RUNS {
        answer.clear();
        let (stats, _) = engine
            .generate(&mut ctx, &request, &never, &mut |piece| {
                answer.push_str(&piece);
                true
            })
            .expect("generation");
        if run > 0 {
            runs.push(figures(&stats)); // run 0 warms caches
        }
    }
    let ours = medians(&runs);
    println!("prompt: {} tokens; generated {} tokens (greedy, max {MAX_TOKENS}); {THREADS} threads; median of {RUNS} runs", ours.prompt_tokens, ours.generated);
    println!(
        "answer starts: {:?}",
        answer.chars().take(80).collect::<String>()
    );
    print_row("ragchat (llama-cpp-2)", &ours);

    let python = std::env::var("RAGCHAT_LLAMA_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/generation_llama_cpp.py"
    );
    let output = Command::new(&python)
        .arg(script)
        .arg(&path)
        .args([
            THREADS.to_string(),
            RUNS.to_string(),
            MAX_TOKENS.to_string(),
        ])
        .env("RAGCHAT_BENCH_PROMPT", &prompt)
        .output();
    let peer = match output {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).to_string(),
        Ok(out) => {
            println!(
                "SKIP peer: llama-cpp-python failed: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            return;
        }
        Err(e) => {
            println!("SKIP peer: cannot run {python}: {e}");
            return;
        }
    };
    let values: Vec<f64> = peer
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let [prompt_tokens, pp_tps, gen_tps, ttft_ms, generated] = values[..] else {
        println!("SKIP peer: unexpected output {peer:?}");
        return;
    };
    let theirs = Figures {
        prompt_tokens: prompt_tokens as usize,
        pp_tps,
        gen_tps,
        ttft_ms,
        generated: generated as usize,
    };
    print_row("llama.cpp (llama-cpp-python)", &theirs);
    println!(
        "ratio ragchat / llama.cpp: prompt processing {:.2}x, generation {:.2}x, time to first token {:.2}x (lower is better)",
        ours.pp_tps / theirs.pp_tps,
        ours.gen_tps / theirs.gen_tps,
        ours.ttft_ms / theirs.ttft_ms
    );
}

fn print_row(name: &str, f: &Figures) {
    println!(
        "{name:<30} prompt {:>7.1} tok/s   generation {:>6.1} tok/s   TTFT {:>7.1} ms   ({} prompt tokens, {} generated)",
        f.pp_tps, f.gen_tps, f.ttft_ms, f.prompt_tokens, f.generated
    );
}
