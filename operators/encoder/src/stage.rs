//! The encoder stage of a pipeline: document batches in, the same batches with their Matryoshka
//! vectors out, in order, with tokenization running ahead of the model.
//!
//! A thread of its own pulls the next item from the source (reading it, for a file source),
//! tokenizes its text column and hands its batches to the model workers, while the caller waits for
//! the oldest item's vectors. At most `ahead` items wait between that thread and the caller, so
//! memory stays bounded and the model never waits for reading or tokenizing. Items without text (the
//! caller's errors, empty batches) pass through in their place. The stage never reorders, never drops:
//! if its thread dies, the caller gets an error, not a short stream.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use arrow_array::{ArrayRef, FixedSizeListArray};

use crate::dims::Dim;
use crate::encoder::Encoder;
use crate::error::{EncoderError, Result};
use crate::prompt::Prompt;
use crate::text_input::text_rows;
use crate::workers::Pending;

/// Items between the tokenizing thread and the caller when the caller does not say.
pub const DEFAULT_AHEAD: usize = 2;

/// One item out of the stage.
pub struct Staged<T> {
    pub item: T,
    /// `None`: the item had no text to embed and passed through; else one array per requested dim.
    pub vectors: Option<Result<Vec<FixedSizeListArray>>>,
}

enum Inflight<T> {
    Pass(T),
    Encoding {
        item: T,
        text: ArrayRef,
        pending: Pending,
    },
    Failed(T, EncoderError),
    End,
}

/// Iterator over `Staged` items; see the module docs.
pub struct EncodeStage<T> {
    rx: Receiver<Inflight<T>>,
    encoder: Arc<Encoder>,
    dims: Vec<Dim>,
    ended: bool,
}

/// What the stage embeds: the model, the dims wanted and the prompt put before every text.
pub struct StageModel {
    pub encoder: Arc<Encoder>,
    pub dims: Vec<Dim>,
    pub prompt: Prompt,
}

impl<T: Send + 'static> EncodeStage<T> {
    /// Starts the stage over `inputs`. `texts` picks the text column of an item (`None`: pass it
    /// through); `ahead` bounds the items tokenized ahead of the caller (at least 1).
    pub fn spawn<I, F>(model: StageModel, ahead: usize, inputs: I, texts: F) -> Result<Self>
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
        F: Fn(&T) -> Option<ArrayRef> + Send + 'static,
    {
        let StageModel {
            encoder,
            dims,
            prompt,
        } = model;
        encoder.check_dims(&dims)?;
        let (tx, rx) = sync_channel(ahead.max(1));
        let (enc, inputs) = (encoder.clone(), inputs.into_iter());
        std::thread::Builder::new()
            .name("lexembed-tokenize".into())
            .spawn(move || feed(&enc, &prompt, inputs, &texts, &tx))
            .map_err(|e| EncoderError::Inference(format!("starting the tokenizer thread: {e}")))?;
        Ok(Self {
            rx,
            encoder,
            dims,
            ended: false,
        })
    }
}

fn feed<T>(
    enc: &Encoder,
    prompt: &Prompt,
    inputs: impl Iterator<Item = T>,
    texts: &impl Fn(&T) -> Option<ArrayRef>,
    tx: &SyncSender<Inflight<T>>,
) {
    for item in inputs {
        let next = match texts(&item) {
            None => Inflight::Pass(item),
            Some(text) => match start(enc, prompt, &text) {
                Ok(pending) => Inflight::Encoding {
                    item,
                    text,
                    pending,
                },
                Err(e) => Inflight::Failed(item, e),
            },
        };
        if tx.send(next).is_err() {
            return; // the caller stopped reading
        }
    }
    let _ = tx.send(Inflight::End);
}

fn start(enc: &Encoder, prompt: &Prompt, text: &ArrayRef) -> Result<Pending> {
    let rows = text_rows(text.as_ref())?;
    let present: Vec<&str> = rows.into_iter().flatten().collect();
    enc.start_job(&present, prompt)
}

/// What waiting a while for the next item gave ([`EncodeStage::next_within`]).
pub enum Next<T> {
    /// The next item (its vectors waited for, as `next` does).
    Ready(Result<Staged<T>>),
    /// Nothing arrived in time: the source is quiet or the tokenizer still busy.
    Waiting,
    /// Every item has been yielded.
    Ended,
}

impl<T> EncodeStage<T> {
    /// The next item if one arrives within `wait`: for callers that must act on time while the source
    /// is quiet (a writer committing what it gathered on its interval).
    pub fn next_within(&mut self, wait: std::time::Duration) -> Next<T> {
        use std::sync::mpsc::RecvTimeoutError;
        if self.ended {
            return Next::Ended;
        }
        match self.rx.recv_timeout(wait) {
            Ok(inflight) => self.staged(inflight).map_or(Next::Ended, Next::Ready),
            Err(RecvTimeoutError::Timeout) => Next::Waiting,
            Err(RecvTimeoutError::Disconnected) => Next::Ready(self.tokenizer_died()),
        }
    }

    fn tokenizer_died(&mut self) -> Result<Staged<T>> {
        self.ended = true;
        Err(EncoderError::Inference(
            "the tokenizer thread stopped before the end of its input (it panicked)".into(),
        ))
    }

    /// One item out of the channel as the caller gets it; `None` at the end.
    fn staged(&mut self, inflight: Inflight<T>) -> Option<Result<Staged<T>>> {
        let staged = match inflight {
            Inflight::End => {
                self.ended = true;
                return None;
            }
            Inflight::Pass(item) => Staged {
                item,
                vectors: None,
            },
            Inflight::Failed(item, e) => Staged {
                item,
                vectors: Some(Err(e)),
            },
            Inflight::Encoding {
                item,
                text,
                pending,
            } => {
                let vectors = pending.wait().and_then(|v| {
                    self.encoder
                        .arrays_around_nulls(text.as_ref(), v, &self.dims)
                });
                Staged {
                    item,
                    vectors: Some(vectors),
                }
            }
        };
        Some(Ok(staged))
    }
}

impl<T> Iterator for EncodeStage<T> {
    type Item = Result<Staged<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        match self.rx.recv() {
            Ok(inflight) => self.staged(inflight),
            Err(_) => Some(self.tokenizer_died()),
        }
    }
}
