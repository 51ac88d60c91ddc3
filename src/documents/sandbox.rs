//! Parsing in a child process under hard resource limits.
//!
//! The parsers' own guards (page counts, inflation caps, nesting depth) give
//! clear messages for the hostile files we know about; this is the limit that
//! holds whatever a file's structure: each document is parsed by a fresh
//! process (the app's own binary, started as `<binary> parse-worker`) whose
//! address space, CPU time and core dumps are capped by `setrlimit` before it
//! reads a byte, and which the server kills after a wall-clock timeout. A
//! decompression bomb, a parser stuck in a loop or a stack overflow ends
//! that process, never the server, and the document fails with a reason
//! naming the limit.
//!
//! Every binary that ingests documents calls [`serve_if_worker`] first thing
//! in `main`, so it can serve as its own parse worker.

use super::parse::{parse, Format, LimitKind, ParseError, ParseLimits, ParsedDocument};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The first argument that makes a binary a parse worker.
pub const WORKER_ARG: &str = "parse-worker";

/// Address space left to the worker for its own code, stack and libraries
/// (the limit is on the whole address space, not only the heap).
const WORKER_BASE_BYTES: u64 = 256 * 1024 * 1024;

/// What the worker may print on stderr that the server keeps (enough for
/// Rust's allocation-failure and stack-overflow messages).
const STDERR_CAP: u64 = 16 * 1024;

/// Hard limits for one parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Memory the parser may use on top of the worker's own footprint.
    pub memory_mib: u64,
    /// CPU time, and (with a little slack) wall-clock time.
    pub timeout_secs: u64,
}

/// How to start parse workers.
#[derive(Debug, Clone)]
pub struct Sandbox {
    program: PathBuf,
    limits: SandboxLimits,
}

/// One job, passed to the worker as its second argument.
#[derive(serde::Serialize, serde::Deserialize)]
struct Job {
    format: Format,
    path: PathBuf,
    limits: ParseLimits,
    memory_bytes: u64,
    cpu_secs: u64,
}

/// Serves a parse job and exits if this process was started as a parse
/// worker; returns at once otherwise. Call it before anything else in `main`
/// (before starting a runtime or loading a model).
pub fn serve_if_worker() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(std::ffi::OsStr::new(WORKER_ARG)) {
        return;
    }
    let code = match args.next().and_then(|job| job.into_string().ok()) {
        Some(job) => run_worker(&job),
        None => 2,
    };
    std::process::exit(code);
}

fn run_worker(job: &str) -> i32 {
    use std::io::Write;
    let Ok(job) = serde_json::from_str::<Job>(job) else {
        eprintln!("parse-worker: unreadable job");
        return 2;
    };
    if let Err(e) = limit_this_process(job.memory_bytes, job.cpu_secs) {
        eprintln!("parse-worker: setting resource limits failed: {e}");
        return 3;
    }
    let mut result = match std::fs::read(&job.path) {
        Ok(bytes) => parse(job.format, &bytes, &job.limits),
        Err(e) => {
            eprintln!("parse-worker: reading the upload: {e}");
            return 4;
        }
    };
    // Growing a buffer with `try_reserve` (as `read_to_end` does) fails
    // softly at the limit, and a decoder then gives up on a truncated
    // stream: a parse that failed after using most of its memory failed for
    // want of memory, whatever the parser says.
    let budget = job.memory_bytes.saturating_sub(WORKER_BASE_BYTES);
    if result.is_err() && peak_resident_bytes().is_some_and(|peak| peak > budget / 2) {
        result = Err(ParseError::TooLarge {
            what: LimitKind::MemoryMib,
            limit: budget >> 20,
        });
    }
    // A library may have printed to stdout; the result follows the last marker.
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(RESULT_MARKER)
        .and_then(|()| serde_json::to_writer(&mut out, &result).map_err(std::io::Error::from))
        .and_then(|()| out.flush());
    if written.is_err() {
        return 5;
    }
    0
}

/// This process's peak resident memory (`VmHWM`, Linux).
fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Precedes the worker's result on its stdout.
const RESULT_MARKER: &[u8] = b"\n\x1eragchat-parse-result\n";

/// The worker's result: the JSON after the last [`RESULT_MARKER`].
fn result_of(out: &[u8]) -> Result<Result<ParsedDocument, ParseError>, serde_json::Error> {
    let start = out
        .windows(RESULT_MARKER.len())
        .rposition(|w| w == RESULT_MARKER)
        .map_or(0, |i| i + RESULT_MARKER.len());
    serde_json::from_slice(&out[start..])
}

/// Reads `reader` to its end, keeping the first `cap` bytes.
async fn drain_capped(mut reader: impl tokio::io::AsyncRead + Unpin, cap: u64) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = reader.read(&mut buf).await {
        let room = (cap as usize).saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}

/// Caps this process: address space, CPU seconds (SIGXCPU, then SIGKILL a
/// second later), no core dumps, no files written, few descriptors.
fn limit_this_process(memory_bytes: u64, cpu_secs: u64) -> std::io::Result<()> {
    use rlimit::Resource;
    Resource::CORE.set(0, 0)?;
    Resource::FSIZE.set(0, 0)?;
    Resource::NOFILE.set(32, 32)?;
    Resource::CPU.set(cpu_secs, cpu_secs + 1)?;
    Resource::AS.set(memory_bytes, memory_bytes)?;
    Ok(())
}

impl Sandbox {
    /// Workers run `program` (default: this process's own binary, through
    /// `/proc/self/exe` so that replacing the file on disk during an upgrade
    /// doesn't start a different build).
    pub fn new(program: Option<PathBuf>, limits: SandboxLimits) -> std::io::Result<Self> {
        let program = match program {
            Some(program) => program,
            None if Path::new("/proc/self/exe").exists() => PathBuf::from("/proc/self/exe"),
            None => std::env::current_exe()?,
        };
        Ok(Self { program, limits })
    }

    pub fn limits(&self) -> &SandboxLimits {
        &self.limits
    }

    /// Parses the file at `path` in a new worker process. A worker that runs
    /// out of memory or time, or crashes, becomes a [`ParseError`] for the
    /// user; only a worker that can't be started, or fails to set itself up,
    /// is a server error. The worker gets no environment (no secrets), runs
    /// in the upload's directory, and is killed if this future is dropped.
    pub async fn parse_file(
        &self,
        format: Format,
        path: &Path,
        limits: &ParseLimits,
    ) -> Result<Result<ParsedDocument, ParseError>, std::io::Error> {
        let path = std::path::absolute(path)?;
        let job = Job {
            format,
            path: path.clone(),
            limits: *limits,
            memory_bytes: WORKER_BASE_BYTES + self.limits.memory_mib * 1024 * 1024,
            cpu_secs: self.limits.timeout_secs.max(1),
        };
        let job = serde_json::to_string(&job).map_err(std::io::Error::other)?;
        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg(WORKER_ARG)
            .arg(job)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = path.parent() {
            command.current_dir(dir);
        }
        let mut child = command.spawn()?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(std::io::Error::other("worker pipes missing"));
        };
        // The text is at most `max_chars` characters, each at most 4 bytes
        // of UTF-8 and 6 of JSON escapes, plus the section list.
        let output_cap = (limits.max_chars as u64).saturating_mul(6) + 16 * 1024 * 1024;
        let wall = Duration::from_secs(self.limits.timeout_secs.max(1) + 5);
        let stderr = tokio::spawn(drain_capped(stderr, STDERR_CAP));
        let run = async {
            let mut out = Vec::new();
            stdout.take(output_cap + 1).read_to_end(&mut out).await?;
            if out.len() as u64 > output_cap {
                // Nothing past the cap is wanted; don't wait for the rest.
                let _ = child.start_kill();
            }
            Ok::<_, std::io::Error>((child.wait().await?, out))
        };
        let finished = tokio::time::timeout(wall, run).await;
        let (status, out) = match finished {
            Ok(finished) => finished?,
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Ok(Err(self.too_slow()));
            }
        };
        if out.len() as u64 > output_cap {
            return Ok(Err(ParseError::TooLarge {
                what: LimitKind::Chars,
                limit: limits.max_chars as u64,
            }));
        }
        if status.success() {
            return result_of(&out).map_err(|e| {
                std::io::Error::other(format!("unreadable parse-worker output: {e}"))
            });
        }
        let err = stderr.await.unwrap_or_default();
        let stderr = String::from_utf8_lossy(&err);
        Ok(Err(self.failure(status, &stderr)?))
    }

    fn too_slow(&self) -> ParseError {
        ParseError::TooLarge {
            what: LimitKind::Seconds,
            limit: self.limits.timeout_secs,
        }
    }

    /// What a worker that ended abnormally means for the user. Exit codes
    /// 2–5 are the worker's own setup failures, a server fault; anything
    /// else (a panic's 101, a signal) is about the file.
    fn failure(
        &self,
        status: std::process::ExitStatus,
        stderr: &str,
    ) -> Result<ParseError, std::io::Error> {
        use std::os::unix::process::ExitStatusExt;
        const SIGKILL: i32 = 9;
        const SIGXCPU: i32 = 24;
        if let Some(code @ 2..=5) = status.code() {
            return Err(std::io::Error::other(format!(
                "parse worker exited with {code}: {}",
                stderr.trim()
            )));
        }
        // Rust reports a failed allocation on stderr and aborts; under the
        // address-space limit that is the memory cap being hit.
        if stderr.contains("memory allocation of") || stderr.contains("capacity overflow") {
            return Ok(ParseError::TooLarge {
                what: LimitKind::MemoryMib,
                limit: self.limits.memory_mib,
            });
        }
        if stderr.contains("overflowed its stack") {
            return Ok(ParseError::Corrupt(
                "its structure is nested too deeply to read".into(),
            ));
        }
        match status.signal() {
            Some(SIGXCPU) | Some(SIGKILL) => Ok(self.too_slow()),
            signal => {
                tracing::warn!(?signal, code = ?status.code(), stderr = %stderr.trim(), "parse worker crashed");
                Ok(ParseError::Corrupt(
                    "the file could not be processed (the reader stopped on it)".into(),
                ))
            }
        }
    }
}
