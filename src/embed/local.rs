//! all-MiniLM-L6-v2 in-process, on OpenVINO's CPU runtime.
//!
//! Why OpenVINO: on this project's 2-core Xeon it embeds about 4x as many
//! chunks per second as sentence-transformers (5-6x when the machine is
//! busy), because it runs the matrix products in bfloat16 on the CPU's AMX
//! units where they exist, at cosine >= 0.9999 to the float32 vectors. ONNX
//! Runtime, tried first, reached ~1.3x in float32, and its int8
//! quantisation fell below cosine 0.999.
//!
//! The model directory (made by `scripts/fetch-embedding-model.sh`) holds
//! `model.onnx` (built from `model.safetensors`, mean pooling and
//! normalisation included), `tokenizer.json`, the
//! sentence-transformers configs, and `openvino/` with OpenVINO's shared
//! libraries from its PyPI wheel, which are loaded at run time.

use super::{load_tokenizer, normalize, EmbedError, Embedder};
use openvino::{
    CompiledModel, Core, DeviceType, ElementType, InferRequest, RwPropertyKey, Shape, Tensor,
};
use parking_lot::{Mutex, MutexGuard};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// What the model reads at most, `[CLS]` and `[SEP]` included, when the
/// model directory does not say (sentence-transformers' value for this model).
const DEFAULT_MAX_TOKENS: usize = 256;

/// Numeric precision of the matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// OpenVINO's choice: bfloat16 on CPUs with native support (AMX or
    /// AVX512-BF16), float32 elsewhere.
    #[default]
    Auto,
    /// Always float32: slower, bit-for-bit closer to sentence-transformers.
    F32,
}

#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Texts per inference call (longest first, so a batch has little padding).
    pub batch_size: usize,
    /// CPU threads for one inference; 0: all available cores.
    pub threads: usize,
    pub precision: Precision,
    /// OpenVINO's C library; default `<model dir>/openvino/libopenvino_c.so`.
    pub runtime_library: Option<PathBuf>,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            batch_size: 32,
            threads: 0,
            precision: Precision::Auto,
            runtime_library: None,
        }
    }
}

pub struct LocalEmbedder {
    inner: Arc<Inner>,
}

struct Inner {
    tokenizer: Tokenizer,
    engine: Mutex<Engine>,
    batch_size: usize,
    dimension: usize,
}

/// One compiled model and its request. OpenVINO spreads one inference over
/// all its threads, so requests are taken in turn rather than in parallel.
struct Engine {
    // Field order is drop order: the request before the model before the core.
    request: InferRequest,
    _compiled: CompiledModel,
    _core: Core,
    inputs: Vec<InputKind>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum InputKind {
    Ids(String),
    Mask(String),
    TokenTypes(String),
}

/// One tokenized text.
struct Tokens {
    ids: Vec<i64>,
}

impl LocalEmbedder {
    /// The embedder for this directory and thread count, shared by everything
    /// in the process (tests start many apps; the model is loaded once).
    /// Blocking: call it from `spawn_blocking`.
    pub fn shared(
        model_dir: &Path,
        threads: usize,
        precision: Precision,
    ) -> Result<Arc<Self>, EmbedError> {
        type Key = (PathBuf, usize, Precision);
        static LOADED: OnceLock<std::sync::Mutex<HashMap<Key, Weak<LocalEmbedder>>>> =
            OnceLock::new();
        let key = (model_dir.to_path_buf(), threads, precision);
        let mut loaded = LOADED
            .get_or_init(Default::default)
            .lock()
            .map_err(|_| EmbedError::Load("embedder registry poisoned".into()))?;
        if let Some(embedder) = loaded.get(&key).and_then(Weak::upgrade) {
            return Ok(embedder);
        }
        let options = LocalOptions {
            threads,
            precision,
            ..LocalOptions::default()
        };
        let embedder = Arc::new(Self::load(model_dir, &options)?);
        loaded.insert(key, Arc::downgrade(&embedder));
        Ok(embedder)
    }

    /// Loads and compiles the model. Blocking (about a second).
    pub fn load(model_dir: &Path, options: &LocalOptions) -> Result<Self, EmbedError> {
        let model_path = model_dir.join("model.onnx");
        if !model_path.is_file() {
            return Err(EmbedError::ModelMissing(model_path));
        }
        let config = ModelConfig::read(model_dir)?;
        let mut tokenizer = load_tokenizer(model_dir)?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: config.max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| EmbedError::Load(format!("tokenizer settings: {e}")))?;
        // Padding is done per batch, to the batch's longest text.
        tokenizer.with_padding(None);

        let threads = match options.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let library = options
            .runtime_library
            .clone()
            .unwrap_or_else(|| model_dir.join("openvino").join("libopenvino_c.so"));
        let engine = Engine::load(&model_path, &library, threads, options.precision)?;
        let embedder = Self {
            inner: Arc::new(Inner {
                tokenizer,
                engine: Mutex::new(engine),
                batch_size: options.batch_size.max(1),
                dimension: config.dimension,
            }),
        };
        // The first inference sets up kernels; do it now rather than in the
        // first user's query, and check the output shape while at it.
        embedder.inner.embed(&["warm-up".to_string()])?;
        Ok(embedder)
    }

    /// Embeds synchronously on the calling thread (the async methods run this
    /// in `spawn_blocking`).
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.inner.embed(texts)
    }
}

#[async_trait::async_trait]
impl Embedder for LocalEmbedder {
    fn model(&self) -> &str {
        MODEL_NAME
    }

    fn dimension(&self) -> usize {
        self.inner.dimension
    }

    async fn embed_documents(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.embed(&texts))
            .await
            .map_err(|e| EmbedError::Inference(format!("the embedding task stopped: {e}")))?
    }

    async fn embed_query(&self, text: String) -> Result<Vec<f32>, EmbedError> {
        let inner = self.inner.clone();
        // A query waits for at most one document batch: the engine lock is
        // released fairly after every batch (see `Inner::embed`).
        let mut vectors = tokio::task::spawn_blocking(move || inner.embed(&[text]))
            .await
            .map_err(|e| EmbedError::Inference(format!("the embedding task stopped: {e}")))??;
        vectors
            .pop()
            .ok_or_else(|| EmbedError::Inference("no vector for the query".into()))
    }
}

impl Inner {
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let tokens = self.tokenize(texts)?;
        // Longest first, so each batch pads to a similar length.
        let mut order: Vec<usize> = (0..tokens.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(tokens[i].ids.len()));
        let mut out = vec![Vec::new(); tokens.len()];
        for batch in order.chunks(self.batch_size) {
            let rows: Vec<&Tokens> = batch.iter().map(|&i| &tokens[i]).collect();
            let input = Batch::pad(&rows);
            let mut engine = self.engine.lock();
            let vectors = engine.run(&input, self.dimension);
            // Hand the engine straight to a waiting query (FIFO) instead of
            // letting this loop take it again for its next batch.
            MutexGuard::unlock_fair(engine);
            for (&i, vector) in batch.iter().zip(vectors?) {
                out[i] = vector;
            }
        }
        Ok(out)
    }

    fn tokenize(&self, texts: &[String]) -> Result<Vec<Tokens>, EmbedError> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| EmbedError::Inference(format!("tokenizing: {e}")))?;
        Ok(encodings
            .iter()
            .map(|e| Tokens {
                ids: e.get_ids().iter().map(|&id| i64::from(id)).collect(),
            })
            .collect())
    }
}

/// Right-padded token ids and the matching attention mask, row-major.
#[derive(Debug, PartialEq)]
struct Batch {
    rows: usize,
    len: usize,
    ids: Vec<i64>,
    mask: Vec<i64>,
}

impl Batch {
    fn pad(rows: &[&Tokens]) -> Self {
        let len = rows.iter().map(|t| t.ids.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0; rows.len() * len];
        let mut mask = vec![0; rows.len() * len];
        for (r, tokens) in rows.iter().enumerate() {
            let n = tokens.ids.len();
            ids[r * len..r * len + n].copy_from_slice(&tokens.ids);
            mask[r * len..r * len + n].fill(1);
        }
        Self {
            rows: rows.len(),
            len,
            ids,
            mask,
        }
    }
}

/// Mean of the token vectors under the attention mask, then unit length:
/// sentence-transformers' `Pooling(mean)` + `Normalize`. `hidden` is one
/// row's `[len, dim]` token vectors. For models that output token vectors;
/// the fetch script's graph pools by itself.
fn pool(hidden: &[f32], mask: &[i64], dim: usize) -> Vec<f32> {
    let mut sum = vec![0f32; dim];
    let mut count = 0f32;
    for (token, &m) in hidden.chunks_exact(dim).zip(mask) {
        if m != 0 {
            sum.iter_mut().zip(token).for_each(|(s, x)| *s += x);
            count += 1.0;
        }
    }
    // sentence-transformers clamps the count at 1e-9 for all-padding rows.
    let count = count.max(1e-9);
    sum.iter_mut().for_each(|s| *s /= count);
    normalize(&mut sum);
    sum
}

impl Engine {
    fn load(
        model_path: &Path,
        library: &Path,
        threads: usize,
        precision: Precision,
    ) -> Result<Self, EmbedError> {
        if !library.exists() {
            return Err(EmbedError::ModelMissing(library.to_path_buf()));
        }
        // Loads once per process; later calls (and `Core::new`) reuse it.
        openvino_sys::library::load_from(library)
            .map_err(|e| EmbedError::Load(format!("OpenVINO runtime: {e}")))?;
        let mut core = Core::new().map_err(|e| EmbedError::Load(format!("OpenVINO: {e}")))?;
        let cpu = DeviceType::CPU;
        let threads = threads.to_string();
        let mut settings = vec![
            (RwPropertyKey::InferenceNumThreads, threads.as_str()),
            // One stream using every thread: the fastest single request.
            (RwPropertyKey::HintPerformanceMode, "LATENCY"),
            // The chat model runs in the same process; pinned threads would
            // fight it for the same cores instead of letting the OS share them.
            (RwPropertyKey::HintEnableCpuPinning, "NO"),
        ];
        if precision == Precision::F32 {
            settings.push((RwPropertyKey::HintInferencePrecision, "f32"));
        }
        core.set_properties(&cpu, settings)
            .map_err(|e| EmbedError::Load(format!("OpenVINO settings: {e}")))?;
        let path = model_path
            .to_str()
            .ok_or_else(|| EmbedError::Load("the model path is not UTF-8".into()))?;
        let model = core
            .read_model_from_file(path, "")
            .map_err(|e| EmbedError::Load(format!("reading {}: {e}", model_path.display())))?;
        let mut compiled = core
            .compile_model(&model, cpu)
            .map_err(|e| EmbedError::Load(format!("compiling the model: {e}")))?;
        let mut inputs = Vec::new();
        let count = compiled.get_input_size().map_err(load_error)?;
        for index in 0..count {
            let name = compiled
                .get_input_by_index(index)
                .and_then(|node| node.get_name())
                .map_err(load_error)?;
            inputs.push(match name.as_str() {
                "input_ids" => InputKind::Ids(name),
                "attention_mask" => InputKind::Mask(name),
                "token_type_ids" => InputKind::TokenTypes(name),
                other => {
                    return Err(EmbedError::Load(format!(
                        "the model has an unexpected input {other:?}"
                    )))
                }
            });
        }
        if !inputs.iter().any(|i| matches!(i, InputKind::Ids(_))) {
            return Err(EmbedError::Load("the model has no input_ids input".into()));
        }
        let request = compiled.create_infer_request().map_err(load_error)?;
        Ok(Self {
            request,
            _compiled: compiled,
            _core: core,
            inputs,
        })
    }

    /// Runs one padded batch; one unit vector per row.
    fn run(&mut self, batch: &Batch, dimension: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        let shape = Shape::new(&[batch.rows as i64, batch.len as i64]).map_err(run_error)?;
        for input in &self.inputs {
            let (name, values) = match input {
                InputKind::Ids(name) => (name, Some(&batch.ids)),
                InputKind::Mask(name) => (name, Some(&batch.mask)),
                // Single-sentence inputs are all segment 0.
                InputKind::TokenTypes(name) => (name, None),
            };
            let mut tensor = Tensor::new(ElementType::I64, &shape).map_err(run_error)?;
            let data = tensor.get_data_mut::<i64>().map_err(run_error)?;
            match values {
                Some(values) => data.copy_from_slice(values),
                None => data.fill(0),
            }
            self.request.set_tensor(name, &tensor).map_err(run_error)?;
        }
        self.request.infer().map_err(run_error)?;
        let output = self
            .request
            .get_output_tensor_by_index(0)
            .map_err(run_error)?;
        if output.get_element_type().map_err(run_error)? != ElementType::F32 {
            return Err(EmbedError::Inference(
                "the model's output is not float32".into(),
            ));
        }
        let dims = output
            .get_shape()
            .map_err(run_error)?
            .get_dimensions()
            .to_vec();
        let data = output.get_data::<f32>().map_err(run_error)?;
        let (rows, len, dim) = (batch.rows as i64, batch.len as i64, dimension as i64);
        if dims == [rows, dim] {
            // Pooled in the graph (`sentence_embedding`, as the fetch script
            // builds it); normalising again only guards other exports.
            Ok(data
                .chunks_exact(dimension)
                .map(|row| {
                    let mut v = row.to_vec();
                    normalize(&mut v);
                    v
                })
                .collect())
        } else if dims == [rows, len, dim] {
            // Token vectors (`last_hidden_state`, as other ONNX exports of the
            // model have it).
            Ok(data
                .chunks_exact(batch.len * dimension)
                .zip(batch.mask.chunks_exact(batch.len))
                .map(|(row, mask)| pool(row, mask, dimension))
                .collect())
        } else {
            Err(EmbedError::Inference(format!(
                "the model returned shape {dims:?}, expected [{rows}, {dim}] or [{rows}, {len}, {dim}]"
            )))
        }
    }
}

fn load_error(e: openvino::InferenceError) -> EmbedError {
    EmbedError::Load(format!("OpenVINO: {e}"))
}

fn run_error(e: openvino::InferenceError) -> EmbedError {
    EmbedError::Inference(format!("OpenVINO: {e}"))
}

/// What the sentence-transformers files in the model directory say.
struct ModelConfig {
    dimension: usize,
    max_tokens: usize,
}

impl ModelConfig {
    fn read(dir: &Path) -> Result<Self, EmbedError> {
        #[derive(Deserialize)]
        struct Bert {
            hidden_size: usize,
        }
        #[derive(Deserialize)]
        struct SentenceBert {
            max_seq_length: Option<usize>,
        }
        #[derive(Deserialize)]
        struct Pooling {
            #[serde(default)]
            pooling_mode_mean_tokens: bool,
        }
        let bert: Bert = read_json(&dir.join("config.json"))?
            .ok_or_else(|| EmbedError::ModelMissing(dir.join("config.json")))?;
        let sentence: Option<SentenceBert> = read_json(&dir.join("sentence_bert_config.json"))?;
        if let Some(pooling) = read_json::<Pooling>(&dir.join("1_Pooling").join("config.json"))? {
            if !pooling.pooling_mode_mean_tokens {
                return Err(EmbedError::Load(
                    "the model's pooling is not mean pooling, the only kind supported".into(),
                ));
            }
        }
        Ok(Self {
            dimension: bert.hidden_size,
            max_tokens: sentence
                .and_then(|s| s.max_seq_length)
                .unwrap_or(DEFAULT_MAX_TOKENS),
        })
    }
}

/// `None` when the file does not exist.
fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, EmbedError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EmbedError::Load(format!("reading {}: {e}", path.display()))),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| EmbedError::Load(format!("parsing {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_averages_only_unmasked_tokens_then_normalizes() {
        // Two tokens of dimension 2, then one padding token that must not count.
        let hidden = [1.0, 0.0, 3.0, 4.0, 100.0, 100.0];
        let v = pool(&hidden, &[1, 1, 0], 2);
        // Mean (2, 2) → unit length.
        let expected = std::f32::consts::FRAC_1_SQRT_2;
        assert!(
            (v[0] - expected).abs() < 1e-6 && (v[1] - expected).abs() < 1e-6,
            "{v:?}"
        );
    }

    #[test]
    fn pool_of_an_all_padding_row_is_zero_not_nan() {
        let v = pool(&[1.0, 2.0], &[0], 2);
        assert_eq!(v, vec![0.0, 0.0]);
    }

    #[test]
    fn batch_pads_right_with_a_matching_mask() {
        let a = Tokens {
            ids: vec![101, 7, 102],
        };
        let b = Tokens {
            ids: vec![101, 102],
        };
        let batch = Batch::pad(&[&a, &b]);
        assert_eq!(
            batch,
            Batch {
                rows: 2,
                len: 3,
                ids: vec![101, 7, 102, 101, 102, 0],
                mask: vec![1, 1, 1, 1, 1, 0],
            }
        );
    }

    #[test]
    fn missing_model_is_reported_with_its_path() {
        let dir = std::env::temp_dir().join("ragchat-no-such-model");
        let error = LocalEmbedder::load(&dir, &LocalOptions::default()).err();
        assert!(
            matches!(&error, Some(EmbedError::ModelMissing(p)) if p.ends_with("model.onnx")),
            "{error:?}"
        );
    }

    #[test]
    fn model_config_reads_dimension_length_and_pooling() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("config.json"), r#"{"hidden_size": 384}"#).ok();
        std::fs::write(
            dir.join("sentence_bert_config.json"),
            r#"{"max_seq_length": 128}"#,
        )
        .ok();
        let config = ModelConfig::read(dir);
        assert!(matches!(
            config,
            Ok(ModelConfig {
                dimension: 384,
                max_tokens: 128
            })
        ));
        std::fs::create_dir_all(dir.join("1_Pooling")).ok();
        std::fs::write(
            dir.join("1_Pooling").join("config.json"),
            r#"{"pooling_mode_mean_tokens": false, "pooling_mode_cls_token": true}"#,
        )
        .ok();
        assert!(matches!(ModelConfig::read(dir), Err(EmbedError::Load(_))));
    }
}
