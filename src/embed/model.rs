//! The embedding model itself: ONNX Runtime (loaded from the shared library the set-up
//! fetches) running all-MiniLM-L6-v2, its WordPiece tokenizer, mean pooling over the
//! attention mask and L2 normalisation, so the dot product of two vectors is their cosine
//! similarity. Synchronous: [`super::Embedder`] runs it off the async runtime.

use crate::config::EmbedConfig;
use anyhow::{anyhow, Context};
use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;
use std::sync::OnceLock;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

/// The ONNX Runtime library and its environment, loaded once per process.
static RUNTIME: OnceLock<Result<Environment, String>> = OnceLock::new();

fn runtime(config: &EmbedConfig) -> anyhow::Result<&'static Environment> {
    let loaded = RUNTIME.get_or_init(|| {
        let builder = ort::init_from(&config.runtime).map_err(|e| {
            format!(
                "cannot load ONNX Runtime from {}: {e} (run scripts/setup.sh)",
                config.runtime.display()
            )
        })?;
        builder
            .with_name("hearth")
            .build()
            .map_err(|e| format!("ONNX Runtime: {e}"))
    });
    loaded.as_ref().map_err(|e| anyhow!(e.clone()))
}

/// A loaded model and tokenizer.
pub struct Model {
    session: Session,
    tokenizer: Tokenizer,
    /// Width of the vectors.
    pub dims: usize,
}

/// One text, tokenized.
pub struct Tokens(Encoding);

impl Tokens {
    /// Tokens the model sees (special tokens included, after truncation).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no token at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Model {
    /// Loads the runtime (once), the model and the tokenizer named by the configuration.
    pub fn load(config: &EmbedConfig) -> anyhow::Result<Self> {
        for (what, path) in [
            ("embedding model", &config.model),
            ("tokenizer", &config.tokenizer),
            ("ONNX Runtime", &config.runtime),
        ] {
            if !path.exists() {
                anyhow::bail!(
                    "the {what} is missing at {} (run scripts/setup.sh)",
                    path.display()
                );
            }
        }
        let environment = runtime(config)?;
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        // Intra-op threads block instead of spinning between runs: on a small machine the
        // spinning threads would take the cores the server needs to answer.
        let builder = Session::builder(environment)
            .map_err(|e| anyhow!("{e}"))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| anyhow!("{e}"))?
            .with_intra_threads(threads)
            .map_err(|e| anyhow!("{e}"))?
            .with_intra_op_spinning(config.spin)
            .map_err(|e| anyhow!("{e}"))?;
        // With the `cuda` feature the model runs on the GPU when onnxruntime-gpu's library is
        // the configured runtime; ONNX Runtime falls back to the CPU otherwise.
        #[cfg(feature = "cuda")]
        let builder = builder
            .with_execution_providers([ort::ep::CUDA::default().build()])
            .map_err(|e| anyhow!("{e}"))?;
        let mut builder = builder;
        let session = builder
            .commit_from_file(&config.model)
            .map_err(|e| anyhow!("cannot load {}: {e}", config.model.display()))?;
        let mut tokenizer = Tokenizer::from_file(&config.tokenizer)
            .map_err(|e| anyhow!("cannot read {}: {e}", config.tokenizer.display()))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: config.max_tokens,
                ..Default::default()
            }))
            .map_err(|e| anyhow!("{e}"))
            .context("tokenizer truncation")?;
        tokenizer.with_padding(None);
        Ok(Self {
            session,
            tokenizer,
            dims: 384,
        })
    }

    /// Tokenizes one text (truncated to the model's window).
    pub fn tokenize(&self, text: &str) -> anyhow::Result<Tokens> {
        self.tokenizer
            .encode(text, true)
            .map(Tokens)
            .map_err(|e| anyhow!("tokenizing: {e}"))
    }

    /// Embeds tokenized texts in one run of the model (padded to the longest); one unit
    /// vector per text.
    pub fn embed(&mut self, batch: &[&Tokens]) -> anyhow::Result<Vec<Vec<f32>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let rows = batch.len();
        let started = std::time::Instant::now();
        let width = batch.iter().map(|t| t.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0i64; rows * width];
        let mut mask = vec![0i64; rows * width];
        let mut types = vec![0i64; rows * width];
        for (r, t) in batch.iter().enumerate() {
            let e = &t.0;
            for (c, ((id, m), ty)) in e
                .get_ids()
                .iter()
                .zip(e.get_attention_mask())
                .zip(e.get_type_ids())
                .enumerate()
            {
                ids[r * width + c] = i64::from(*id);
                mask[r * width + c] = i64::from(*m);
                types[r * width + c] = i64::from(*ty);
            }
        }
        let shape = [rows, width];
        let inputs = ort::inputs![
            "input_ids" => TensorRef::from_array_view((shape, &*ids)).map_err(|e| anyhow!("{e}"))?,
            "attention_mask" => TensorRef::from_array_view((shape, &*mask)).map_err(|e| anyhow!("{e}"))?,
            "token_type_ids" => TensorRef::from_array_view((shape, &*types)).map_err(|e| anyhow!("{e}"))?,
        ];
        let outputs = self
            .session
            .run(inputs)
            .map_err(|e| anyhow!("embedding model: {e}"))?;
        let (out_shape, hidden) = outputs["last_hidden_state"]
            .try_extract_tensor::<f32>()
            .map_err(|e| anyhow!("embedding output: {e}"))?;
        let dims = out_shape.last().copied().unwrap_or(0) as usize;
        if out_shape.len() != 3 || dims == 0 || hidden.len() != rows * width * dims {
            anyhow::bail!("unexpected embedding output shape {out_shape:?}");
        }
        let mut vectors = Vec::with_capacity(rows);
        for r in 0..rows {
            let mut v = vec![0f32; dims];
            let mut count = 0f32;
            for c in 0..width {
                if mask[r * width + c] == 0 {
                    continue;
                }
                count += 1.0;
                let h = &hidden[(r * width + c) * dims..(r * width + c + 1) * dims];
                for (acc, x) in v.iter_mut().zip(h) {
                    *acc += x;
                }
            }
            let count = count.max(1.0);
            v.iter_mut().for_each(|x| *x /= count);
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|x| *x /= norm);
            vectors.push(v);
        }
        self.dims = dims;
        crate::ops::metrics::embed_batch(rows, started.elapsed().as_secs_f64());
        Ok(vectors)
    }
}
