//! Tokenization with HF `tokenizers`, configured as sentence-transformers configures it: special tokens
//! added, `longest_first` truncation at the model's `max_seq_length`, lower-casing when the model asks,
//! and SentencePiece's whitespace rule for XLM-R-family tokenizers (see `sentencepiece_whitespace`).
//!
//! Owns turning texts into token ids (in parallel) and the pad id. Padding itself happens per batch in
//! `encoder`, because only the batch knows its padded length.

use std::path::Path;

use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::metaspace::PrependScheme;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::{
    ModelWrapper, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

use crate::error::{EncoderError, Result};
use crate::prompt::Prompt;

/// Token ids of one text, truncated, with special tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIds(pub Vec<u32>);

/// A tokenizer ready to feed the model.
pub struct TextTokenizer {
    inner: Tokenizer,
    pad_id: u32,
    lowercase: bool,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`, truncating at `max_seq_length` and never padding (batches pad themselves).
    pub fn from_file(path: &Path, max_seq_length: usize, lowercase: bool) -> Result<Self> {
        let mut inner = Tokenizer::from_file(path).map_err(|e| EncoderError::BadFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let pad_id = find_pad_id(&inner);
        sentencepiece_whitespace(&mut inner);
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        Ok(Self {
            inner,
            pad_id,
            lowercase,
        })
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Pieces in the vocabulary (added tokens included): token ids run below it.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Tokenizes every text with `prompt` before it, in parallel across texts (tokenizers' rayon
    /// pool).
    pub fn encode_all(&self, texts: &[&str], prompt: &Prompt) -> Result<Vec<TokenIds>> {
        Ok(self
            .encode_counted(texts, prompt)?
            .into_iter()
            .map(|(ids, _)| ids)
            .collect())
    }

    /// `encode_all`, with whether each text was cut at the max length (a server reports it).
    /// The prompt is part of the text, as sentence-transformers prepends it: it counts towards the
    /// max length and is lower-cased with the text when the model lower-cases.
    pub fn encode_counted(&self, texts: &[&str], prompt: &Prompt) -> Result<Vec<(TokenIds, bool)>> {
        let inputs: Vec<String> = texts
            .iter()
            .map(|t| {
                let text = prompt.apply(t);
                if self.lowercase {
                    text.to_lowercase()
                } else {
                    text
                }
            })
            .collect();
        let encodings = self
            .inner
            .encode_batch_fast(inputs, true)
            .map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        Ok(encodings
            .into_iter()
            .map(|e| {
                let cut = !e.get_overflowing().is_empty();
                (TokenIds(e.get_ids().to_vec()), cut)
            })
            .collect())
    }
}

/// XLM-R-family `tokenizer.json` files (a Unigram model behind a bare `Metaspace` pre-tokenizer, as
/// bge-m3 and multilingual-e5 ship them) keep a text's leading and trailing whitespace as a `▁` token,
/// where SentencePiece, and transformers' XLM-R tokenizer that sentence-transformers uses, split on
/// whitespace first and drop it: `"…final.   "` ends `[…, 5, 6, 2]` instead of `[…, 5, 2]`, a
/// different vector. Splitting on whitespace before `Metaspace`, as transformers does, gives its ids.
fn sentencepiece_whitespace(tok: &mut Tokenizer) {
    let unigram = matches!(tok.get_model(), ModelWrapper::Unigram(_));
    let bare_metaspace = match tok.get_pre_tokenizer() {
        Some(PreTokenizerWrapper::Metaspace(m)) if unigram && m.get_split() => {
            (m.get_prepend_scheme() == PrependScheme::Always).then(|| m.clone())
        }
        _ => None,
    };
    if let Some(metaspace) = bare_metaspace {
        let split: PreTokenizerWrapper = WhitespaceSplit.into();
        let sequence = Sequence::new(vec![split, metaspace.into()]);
        tok.with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(sequence)));
    }
}

/// The pad id the tokenizer declares, else the usual pad tokens of BERT and XLM-R vocabularies.
/// XLM-R's position ids depend on it (positions start after the pad id), so a wrong guess matters.
fn find_pad_id(tok: &Tokenizer) -> u32 {
    if let Some(p) = tok.get_padding() {
        return p.pad_id;
    }
    ["<pad>", "[PAD]", "<|pad|>", "<|endoftext|>"]
        .iter()
        .find_map(|t| tok.token_to_id(t))
        .unwrap_or(0)
}
