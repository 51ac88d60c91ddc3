//! The embedded model: llama.cpp in-process through `llama-cpp-2`.
//!
//! One worker thread owns the model and a reusable context; chats queue for
//! it (two CPU cores gain nothing from running two generations at once) and
//! tokens flow back through a channel, so the async executor never blocks.

use super::{ChatModel, CompletionRequest, LlmError, LlmEvent, LlmStream, PromptMessage};
use crate::config::LocalSettings;
use app::wire::FinishReason;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock, Weak};
use std::time::Instant;
use tokio::sync::mpsc as tokio_mpsc;
use tokio_util::sync::CancellationToken;

/// Prompt tokens are decoded in slices of this size so that a Stop during a
/// long prompt takes effect within about a second.
const PROMPT_SLICE: usize = 256;

struct Job {
    request: CompletionRequest,
    events: tokio_mpsc::Sender<Result<LlmEvent, LlmError>>,
    cancel: CancellationToken,
}

pub struct LocalModel {
    name: String,
    jobs: Mutex<mpsc::Sender<Job>>,
    /// Jobs submitted and not yet finished (running one included).
    in_flight: Arc<AtomicUsize>,
}

/// Timings of one generation, for benchmarks.
#[derive(Debug, Clone, Copy)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Decoding the prompt.
    pub prompt_ms: f64,
    /// From the start until the first answer token was sampled (time to first token).
    pub first_token_ms: Option<f64>,
    /// From the start until the last token was sampled.
    pub total_ms: f64,
}

fn backend() -> Result<&'static LlamaBackend, LlmError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LlmError::Local(format!("llama.cpp backend: {e}")))
}

impl LocalModel {
    /// The loaded model for these settings, shared by every app in the process
    /// (tests start many apps; the model is loaded once).
    pub fn shared(settings: &LocalSettings) -> Result<Arc<Self>, LlmError> {
        type Key = (PathBuf, u32, usize);
        static LOADED: OnceLock<Mutex<HashMap<Key, Weak<LocalModel>>>> = OnceLock::new();
        let key = (
            settings.gguf_path(),
            settings.context_tokens,
            settings.threads,
        );
        let mut loaded = LOADED
            .get_or_init(Default::default)
            .lock()
            .map_err(|_| LlmError::Local("model registry poisoned".into()))?;
        if let Some(model) = loaded.get(&key).and_then(Weak::upgrade) {
            return Ok(model);
        }
        let model = Arc::new(Self::load(settings)?);
        loaded.insert(key, Arc::downgrade(&model));
        Ok(model)
    }

    /// Loads the GGUF on a new worker thread and waits until it is ready.
    pub fn load(settings: &LocalSettings) -> Result<Self, LlmError> {
        let path = settings.gguf_path();
        if !path.is_file() {
            return Err(LlmError::Local(format!(
                "model file {} not found; run scripts/fetch-models.sh (or set APP__LLM__BASE_URL to use an HTTP model server)",
                path.display()
            )));
        }
        let name = settings.model.display_name().to_string();
        let threads = if settings.threads == 0 {
            std::thread::available_parallelism().map_or(2, usize::from)
        } else {
            settings.threads
        };
        let engine = EngineConfig {
            path,
            threads: i32::try_from(threads).unwrap_or(2),
            context_tokens: settings.context_tokens.max(512),
            batch_tokens: settings.batch_tokens.max(32),
        };
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let worker_in_flight = in_flight.clone();
        std::thread::Builder::new()
            .name("llm-worker".into())
            .spawn(move || worker(engine, jobs_rx, ready_tx, worker_in_flight))
            .map_err(|e| LlmError::Local(format!("spawning the model thread: {e}")))?;
        ready_rx
            .recv()
            .map_err(|_| LlmError::Local("the model thread exited while loading".into()))??;
        Ok(Self {
            name,
            jobs: Mutex::new(jobs_tx),
            in_flight,
        })
    }
}

#[async_trait::async_trait]
impl ChatModel for LocalModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn provider(&self) -> &'static str {
        "llama.cpp"
    }

    async fn stream(
        &self,
        request: CompletionRequest,
        cancel: CancellationToken,
    ) -> Result<LlmStream, LlmError> {
        let (events, mut rx) = tokio_mpsc::channel(256);
        let ahead = self.in_flight.fetch_add(1, Ordering::SeqCst);
        if ahead > 0 {
            // Cannot fail: the receiver is still here.
            let _ = events.try_send(Ok(LlmEvent::Queued { position: ahead }));
        }
        let sent = self
            .jobs
            .lock()
            .map_err(|_| LlmError::Local("job queue poisoned".into()))?
            .send(Job {
                request,
                events,
                cancel,
            });
        if sent.is_err() {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(LlmError::Local("the model thread has stopped".into()));
        }
        Ok(Box::pin(futures::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
        })))
    }
}

struct EngineConfig {
    path: PathBuf,
    threads: i32,
    context_tokens: u32,
    batch_tokens: u32,
}

fn worker(
    config: EngineConfig,
    jobs: mpsc::Receiver<Job>,
    ready: mpsc::Sender<Result<(), LlmError>>,
    in_flight: Arc<AtomicUsize>,
) {
    let loaded = Engine::load(&config);
    let model = match loaded {
        Ok(model) => model,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut ctx = match model.new_context(&config) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    tracing::info!(model = %config.path.display(), threads = config.threads, "local model ready");
    while let Ok(job) = jobs.recv() {
        let Job {
            request,
            events,
            cancel,
        } = job;
        let stop = || cancel.is_cancelled() || events.is_closed();
        let emit = |event: Result<LlmEvent, LlmError>| events.blocking_send(event).is_ok();
        emit(Ok(LlmEvent::Started));
        let result = model.generate(&mut ctx, &request, &stop, &mut |piece| {
            emit(Ok(LlmEvent::Token(piece)))
        });
        in_flight.fetch_sub(1, Ordering::SeqCst);
        match result {
            Ok((stats, reason)) => {
                emit(Ok(LlmEvent::Usage {
                    prompt_tokens: u32::try_from(stats.prompt_tokens).unwrap_or(u32::MAX),
                    completion_tokens: u32::try_from(stats.completion_tokens).unwrap_or(u32::MAX),
                }));
                emit(Ok(LlmEvent::Finished(reason)));
            }
            Err(e) => {
                tracing::warn!(error = %e, "local generation failed");
                emit(Err(e));
            }
        }
    }
}

/// A loaded GGUF and its chat template. Public so the benchmark can drive it
/// exactly as the server does.
pub struct Engine {
    model: LlamaModel,
    template: LlamaChatTemplate,
}

impl Engine {
    fn load(config: &EngineConfig) -> Result<Self, LlmError> {
        let backend = backend()?;
        let model = LlamaModel::load_from_file(backend, &config.path, &LlamaModelParams::default())
            .map_err(|e| LlmError::Local(format!("loading {}: {e}", config.path.display())))?;
        let template = model
            .chat_template(None)
            .map_err(|e| LlmError::Local(format!("the GGUF has no usable chat template: {e}")))?;
        Ok(Self { model, template })
    }

    /// Loads a GGUF for benchmarking.
    pub fn open(
        path: PathBuf,
        threads: i32,
        context_tokens: u32,
        batch_tokens: u32,
    ) -> Result<(Self, EngineParams), LlmError> {
        let config = EngineConfig {
            path,
            threads,
            context_tokens,
            batch_tokens,
        };
        let engine = Self::load(&config)?;
        Ok((engine, EngineParams(config)))
    }

    fn new_context(&self, config: &EngineConfig) -> Result<LlamaContext<'_>, LlmError> {
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(config.context_tokens))
            .with_n_batch(config.batch_tokens)
            .with_n_ubatch(config.batch_tokens)
            .with_n_threads(config.threads)
            .with_n_threads_batch(config.threads)
            // As llama.cpp's own server and llama-cpp-python default to: on 2
            // CPU cores flash attention only costs time at these context sizes.
            .with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED);
        self.model
            .new_context(backend()?, params)
            .map_err(|e| LlmError::Local(format!("creating a context: {e}")))
    }

    /// A fresh context, for benchmarking.
    pub fn context(&self, params: &EngineParams) -> Result<LlamaContext<'_>, LlmError> {
        self.new_context(&params.0)
    }

    /// The prompt text after the model's chat template.
    pub fn render_prompt(&self, messages: &[PromptMessage]) -> Result<String, LlmError> {
        let chat = messages
            .iter()
            .map(|m| {
                LlamaChatMessage::new(m.role.as_str().to_string(), m.content.replace('\0', ""))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LlmError::Local(format!("chat message: {e}")))?;
        self.model
            .apply_chat_template(&self.template, &chat, true)
            .map_err(|e| LlmError::Local(format!("applying the chat template: {e}")))
    }

    /// The prompt's tokens. Only the chat template's own markers are parsed
    /// as control tokens: each message's text (the user's, a document's, an
    /// earlier answer's) is tokenized as plain text, so `<|im_start|>system`
    /// inside it reaches the model as the characters it is, not as a turn.
    pub fn prompt_tokens(
        &self,
        messages: &[PromptMessage],
    ) -> Result<Vec<llama_cpp_2::token::LlamaToken>, LlmError> {
        // The template is rendered around placeholders (the messages' text is
        // not in it); the text between them is the template's own.
        let placeholders: Vec<String> = (0..messages.len())
            .map(|i| format!("\u{E000}ragchat-message-{i}\u{E001}"))
            .collect();
        let skeleton: Vec<PromptMessage> = messages
            .iter()
            .zip(&placeholders)
            .map(|(m, placeholder)| PromptMessage {
                role: m.role,
                content: placeholder.clone(),
            })
            .collect();
        let rendered = self.render_prompt(&skeleton)?;
        let vocab = self.model.vocab();
        let mut tokens = Vec::new();
        let mut push = |text: &str, parse_special: bool| {
            if !text.is_empty() {
                let add_bos = tokens.is_empty();
                tokens.extend(vocab.tokenize(text.as_bytes(), add_bos, parse_special));
            }
        };
        let mut rest = rendered.as_str();
        for (message, placeholder) in messages.iter().zip(&placeholders) {
            let at = rest
                .find(placeholder.as_str())
                .ok_or_else(|| LlmError::Local("the chat template left out a message".into()))?;
            push(&rest[..at], true);
            push(message.content.replace('\0', "").trim(), false);
            rest = &rest[at + placeholder.len()..];
        }
        push(rest, true);
        Ok(tokens)
    }

    /// The id of a control token written as text (`<|im_start|>`), if the
    /// model has one by that name.
    pub fn control_token(&self, text: &str) -> Option<llama_cpp_2::token::LlamaToken> {
        match self.model.vocab().tokenize(text.as_bytes(), false, true)[..] {
            [token] if self.model.vocab().is_control(token) => Some(token),
            _ => None,
        }
    }

    /// Renders and tokenizes the prompt, dropping the oldest turns (never the
    /// system prompt or the last message) until it leaves room to answer.
    fn fit_prompt(
        &self,
        messages: &[PromptMessage],
        n_ctx: usize,
        min_answer: usize,
    ) -> Result<Vec<llama_cpp_2::token::LlamaToken>, LlmError> {
        let mut kept: Vec<PromptMessage> = messages.to_vec();
        loop {
            let tokens = self.prompt_tokens(&kept)?;
            if tokens.len() + min_answer <= n_ctx {
                return Ok(tokens);
            }
            let first_droppable = kept
                .iter()
                .position(|m| m.role != super::PromptRole::System);
            match first_droppable {
                Some(i) if i + 1 < kept.len() => {
                    kept.remove(i);
                }
                _ => {
                    return Err(LlmError::ContextOverflow {
                        needed: tokens.len() + min_answer,
                        limit: n_ctx,
                    })
                }
            }
        }
    }

    /// Runs one completion in `ctx`, calling `on_piece` with each piece of
    /// text; stops early when `stop()` or `on_piece` says so.
    pub fn generate(
        &self,
        ctx: &mut LlamaContext<'_>,
        request: &CompletionRequest,
        stop: &dyn Fn() -> bool,
        on_piece: &mut dyn FnMut(String) -> bool,
    ) -> Result<(GenerationStats, FinishReason), LlmError> {
        let n_ctx = ctx.n_ctx() as usize;
        let batch_size = (ctx.n_batch() as usize).max(1);
        let max_tokens = request.max_tokens.max(1) as usize;
        let tokens =
            self.fit_prompt(&request.messages, n_ctx, max_tokens.min(n_ctx / 4).max(16))?;
        let max_tokens = max_tokens.min(n_ctx - tokens.len());
        ctx.clear_kv_cache();

        let started = Instant::now();
        let slice = PROMPT_SLICE.min(batch_size);
        let mut batch = LlamaBatch::new(batch_size.max(slice), 1);
        if !decode_prompt(ctx, &mut batch, &tokens, slice, stop)? {
            let stats = GenerationStats {
                prompt_tokens: tokens.len(),
                completion_tokens: 0,
                prompt_ms: ms(started),
                first_token_ms: None,
                total_ms: ms(started),
            };
            return Ok((stats, FinishReason::Cancelled));
        }
        let prompt_ms = ms(started);

        let mut sampler = sampler(request.temperature, request.top_p);
        let vocab = self.model.vocab();
        let mut decoder = encoding_rs::UTF_8.new_decoder();
        let mut position = tokens.len();
        let mut generated = 0;
        let mut reason = FinishReason::Length;
        let mut first_token_ms = None;
        let mut last_token_ms = prompt_ms;
        while generated < max_tokens {
            if stop() {
                reason = FinishReason::Cancelled;
                break;
            }
            let token = sampler.sample(ctx, batch.n_tokens() - 1);
            sampler.accept(token);
            last_token_ms = ms(started);
            first_token_ms.get_or_insert(last_token_ms);
            if vocab.is_eog(token) {
                reason = FinishReason::Stop;
                break;
            }
            generated += 1;
            // Tokens can end inside a multi-byte character; the decoder holds
            // the partial bytes until the next token completes them.
            let bytes = vocab.token_to_piece(token, false, None);
            let mut piece = String::with_capacity(
                decoder
                    .max_utf8_buffer_length(bytes.len())
                    .unwrap_or(bytes.len() + 8),
            );
            let _ = decoder.decode_to_string(&bytes, &mut piece, false);
            if !piece.is_empty() && !on_piece(piece) {
                reason = FinishReason::Cancelled;
                break;
            }
            if generated == max_tokens {
                break;
            }
            batch.clear();
            batch
                .add(token, position as i32, &[0], true)
                .map_err(|e| LlmError::Local(format!("batch: {e}")))?;
            position += 1;
            ctx.decode(&mut batch)
                .map_err(|e| LlmError::Local(format!("decoding: {e}")))?;
        }
        let stats = GenerationStats {
            prompt_tokens: tokens.len(),
            completion_tokens: generated,
            prompt_ms,
            first_token_ms,
            total_ms: last_token_ms,
        };
        Ok((stats, reason))
    }
}

/// Feeds the prompt to the model in slices of `slice` tokens (asking for
/// logits of the last one only); `false` if `stop()` said so in between.
fn decode_prompt(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch,
    tokens: &[LlamaToken],
    slice: usize,
    stop: &dyn Fn() -> bool,
) -> Result<bool, LlmError> {
    let last = tokens.len() - 1;
    for (chunk_index, chunk) in tokens.chunks(slice).enumerate() {
        if stop() {
            return Ok(false);
        }
        batch.clear();
        for (offset, token) in chunk.iter().enumerate() {
            let pos = chunk_index * slice + offset;
            batch
                .add(*token, pos as i32, &[0], pos == last)
                .map_err(|e| LlmError::Local(format!("batch: {e}")))?;
        }
        ctx.decode(batch)
            .map_err(|e| LlmError::Local(format!("decoding the prompt: {e}")))?;
    }
    Ok(true)
}

/// Greedy at temperature 0, else top-k 40, top-p (0.95 unless the request
/// says), then the temperature.
fn sampler(temperature: f32, top_p: Option<f32>) -> LlamaSampler {
    if temperature <= 0.0 {
        LlamaSampler::greedy()
    } else {
        LlamaSampler::chain_simple([
            LlamaSampler::top_k(40),
            LlamaSampler::top_p(top_p.unwrap_or(0.95), 1),
            LlamaSampler::temp(temperature),
            LlamaSampler::dist(rand_seed()),
        ])
    }
}

/// Opaque context settings for [`Engine::context`].
pub struct EngineParams(EngineConfig);

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn rand_seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id()
}
