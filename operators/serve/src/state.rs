//! What every handler shares: the model's queue, the served datasets and the limits.

use std::collections::BTreeMap;
use std::sync::Arc;

use lexembed_encoder::{Dim, Input, Prompt, PromptChoice, Role, SharedBatcher};

use crate::input::{InputRules, Inputs, TokenIdRules};
use lexembed_lance::DatasetLocation;

/// `/metrics`' body, rendered by the recorder the binary installed.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// How much one request may ask for.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Texts per request (OpenAI's own limit by default, so clients' default batches fit).
    pub max_inputs: usize,
    /// Tokens of every text of one request together, after truncation at the model's max length:
    /// what bounds a request's cost on the model.
    pub max_request_tokens: usize,
    /// Bytes of one request body.
    pub max_request_bytes: usize,
    /// Hits per search.
    pub max_k: usize,
    /// Token arrays in `input`/`inputs` are the model's own ids (`--token-ids`), not refused.
    pub token_ids: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_inputs: 2048,
            // OpenAI's per-request token limit for embeddings.
            max_request_tokens: 300_000,
            max_request_bytes: 8 << 20,
            max_k: 1000,
            token_ids: false,
        }
    }
}

/// A Lance dataset `/search` may read, by the name clients use.
#[derive(Debug, Clone)]
pub struct ServedDataset {
    pub name: String,
    pub location: DatasetLocation,
    /// Its vector columns' dims, widest first.
    pub dims: Vec<Dim>,
}

/// Everything a handler needs.
pub struct ServeState {
    pub queue: SharedBatcher,
    /// The id clients name in `model` (default: the model directory's model id).
    pub model_name: String,
    pub datasets: BTreeMap<String, ServedDataset>,
    pub limits: Limits,
    /// Bearer key every API route requires, when set.
    pub api_key: Option<String>,
    pub render_metrics: Option<RenderMetrics>,
}

impl ServeState {
    /// The Matryoshka dims the model serves, widest first.
    pub fn dims(&self) -> &[Dim] {
        self.queue.encoder().dims().as_slice()
    }

    /// `requested`, when the model serves it; the full width when none is asked for.
    pub fn dim(&self, requested: Option<u32>) -> Result<Dim, crate::ApiError> {
        let full = self.queue.encoder().dims().full();
        let Some(d) = requested else {
            return Ok(full);
        };
        self.dims()
            .iter()
            .copied()
            .find(|x| x.0 == d)
            .ok_or_else(|| {
                let served: Vec<String> = self.dims().iter().map(|d| d.0.to_string()).collect();
                crate::ApiError::invalid(
                    "dimensions",
                    format!(
                        "{d} is not a Matryoshka dim of this model: use one of {}",
                        served.join(", ")
                    ),
                )
            })
    }
}

/// A request's vectors at one dim, and what the tokenizer made of its texts.
#[derive(Debug, Clone)]
pub struct Vectors {
    pub rows: Vec<Vec<f32>>,
    /// Tokens of every text together (special tokens included): OpenAI's `usage.prompt_tokens`.
    pub tokens: usize,
    /// Whether each text was cut at the model's max length.
    pub truncated: Vec<bool>,
}

impl Vectors {
    /// Texts cut at the model's max length.
    pub fn truncated_count(&self) -> usize {
        self.truncated.iter().filter(|&&t| t).count()
    }
}

impl ServeState {
    /// What a request's inputs may be (`input::inputs`).
    pub fn input_rules(&self) -> InputRules {
        let encoder = self.queue.encoder();
        InputRules {
            max_inputs: self.limits.max_inputs,
            token_ids: self.limits.token_ids.then(|| TokenIdRules {
                vocab_size: encoder.tokenizer().vocab_size(),
                max_length: encoder.model().max_seq_length,
            }),
        }
    }

    /// `inputs` back when, with `prompt`, their tokens fit `max_request_tokens`; else OpenAI's 400
    /// naming the limit and the count. Texts are tokenized only when the bound `texts × max length`
    /// does not already fit (the model truncates every text at its max length); token ids count as
    /// sent.
    pub async fn within_token_limit(
        &self,
        field: &str,
        inputs: Inputs,
        prompt: &Prompt,
    ) -> Result<Inputs, crate::ApiError> {
        let limit = self.limits.max_request_tokens;
        let encoder = self.queue.encoder().clone();
        let tokens = match &inputs {
            Inputs::Ids(ids) => ids.iter().map(|t| t.0.len()).sum(),
            Inputs::Texts(texts)
                if texts.len().saturating_mul(encoder.model().max_seq_length) <= limit =>
            {
                return Ok(inputs);
            }
            Inputs::Texts(_) => {
                let prompt = prompt.clone();
                let (inputs, counted) = tokio::task::spawn_blocking(move || {
                    let counted = match &inputs {
                        Inputs::Texts(texts) => {
                            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                            encoder.tokenizer().encode_counted(&refs, &prompt)
                        }
                        Inputs::Ids(_) => Ok(Vec::new()),
                    };
                    (inputs, counted)
                })
                .await
                .map_err(|e| crate::ApiError::internal(format!("tokenizing the request: {e}")))?;
                let counted = counted.map_err(|e| {
                    crate::ApiError::internal(format!("tokenizing the request: {e}"))
                })?;
                let tokens = counted.iter().map(|(ids, _)| ids.0.len()).sum();
                return within(field, tokens, limit).map(|()| inputs);
            }
        };
        within(field, tokens, limit).map(|()| inputs)
    }

    /// The prompt a request names (`prompt_name`, one of the model's prompts), else the model's
    /// default prompt, as sentence-transformers' `encode(prompt_name=…)`. Token ids take none: a
    /// prompt named beside them is refused, not silently dropped.
    pub fn request_prompt(
        &self,
        name: Option<&str>,
        inputs: &Inputs,
    ) -> Result<Prompt, crate::ApiError> {
        let model = self.queue.encoder().model();
        if let (Inputs::Ids(_), Some(_)) = (inputs, name) {
            return Err(crate::ApiError::invalid(
                "prompt_name",
                "a prompt is put before texts, not token ids: tokenize the prompt with the input",
            ));
        }
        match name {
            None => Ok(model.default_prompt()),
            Some(n) => model
                .prompt_for(Role::Query, &PromptChoice::Named(n.to_string()))
                .map_err(|e| crate::ApiError::invalid("prompt_name", e.to_string())),
        }
    }

    /// `inputs` through the model's queue (429 when it is full), texts with `prompt` before each (token
    /// ids go as they are), at `dim`: the Matryoshka prefix, renormalised unless `renormalise` is false
    /// (then the prefix of the model's output as is).
    pub async fn embed(
        &self,
        inputs: Inputs,
        prompt: &Prompt,
        dim: Dim,
        renormalise: bool,
    ) -> Result<Vectors, crate::ApiError> {
        let n = inputs.len();
        let out = match inputs {
            Inputs::Texts(texts) => self.queue.try_embed(texts, prompt).await?,
            Inputs::Ids(ids) => {
                let rows = ids.into_iter().map(Input::Ids).collect();
                self.queue.try_embed_inputs(rows).await?
            }
        };
        let rows = (0..n)
            .map(|i| match renormalise {
                true => out.embeddings.prefix(i, dim),
                false => out.embeddings.row(i)[..dim.get()].to_vec(),
            })
            .collect();
        let vectors = Vectors {
            rows,
            tokens: out.tokens.iter().sum(),
            truncated: out.truncated,
        };
        metrics::counter!("lexembed_serve_texts_total").increment(n as u64);
        metrics::counter!("lexembed_serve_truncated_total")
            .increment(vectors.truncated_count() as u64);
        Ok(vectors)
    }
}

/// OpenAI's 400 when `tokens` exceed `limit` (`--max-request-tokens`).
fn within(field: &str, tokens: usize, limit: usize) -> Result<(), crate::ApiError> {
    if tokens > limit {
        return Err(crate::ApiError::invalid(
            field,
            format!(
                "Requested {tokens} tokens, max {limit} tokens per request (--max-request-tokens): send fewer or shorter inputs"
            ),
        )
        .with_code("max_tokens_per_request"));
    }
    Ok(())
}
