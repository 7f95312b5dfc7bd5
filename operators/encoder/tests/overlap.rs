//! The model never waits for tokenization: in the encoder stage, the next document batch is tokenized
//! while the model runs this one. Read from the stage's own tracing spans (`tokenize` on the stage's
//! thread, `model_call` on the model workers, both carrying the job id), with the real MiniLM model.
//! Its own test binary: it installs the process-wide tracing subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow_array::{ArrayRef, StringArray};
use lexembed_encoder::{Dim, EncodeStage, Encoder, EncoderOptions, Prompt, StageModel};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// (span name, job) → (first start, last end).
type Spans = Arc<Mutex<BTreeMap<(String, u64), (Instant, Instant)>>>;

struct Timing {
    name: String,
    job: Option<u64>,
    start: Instant,
}

struct Recorder(Spans);

struct JobField(Option<u64>);

impl Visit for JobField {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "job" {
            self.0 = Some(value);
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut job = JobField(None);
        attrs.record(&mut job);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Timing {
                name: attrs.metadata().name().to_string(),
                job: job.0,
                start: Instant::now(),
            });
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let end = Instant::now();
        let Some(span) = ctx.span(&id) else { return };
        let ext = span.extensions();
        let Some(t) = ext.get::<Timing>() else { return };
        if let Some(job) = t.job {
            let mut spans = self.0.lock().unwrap();
            let e = spans.entry((t.name.clone(), job)).or_insert((t.start, end));
            e.0 = e.0.min(t.start);
            e.1 = e.1.max(end);
        }
    }
}

#[test]
fn the_next_batch_is_tokenized_while_the_model_runs_this_one() {
    let spans: Spans = Arc::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(Recorder(spans.clone())),
    )
    .unwrap();

    let enc = Arc::new(Encoder::open(common::minilm(), &EncoderOptions::default()).unwrap());
    let sentences = common::sentences();
    let batches: Vec<ArrayRef> = (0..4)
        .map(|b| {
            let texts: Vec<&str> = (0..96)
                .map(|i| sentences[(b * 7 + i) % sentences.len()].as_str())
                .collect();
            Arc::new(StringArray::from(texts)) as ArrayRef
        })
        .collect();
    let stage = EncodeStage::spawn(
        StageModel {
            encoder: enc,
            dims: vec![Dim(384)],
            prompt: Prompt::none(),
        },
        2,
        batches,
        |a: &ArrayRef| Some(a.clone()),
    )
    .unwrap();
    assert_eq!(stage.map(Result::unwrap).count(), 4);

    let spans = spans.lock().unwrap();
    let jobs: Vec<u64> = spans
        .keys()
        .filter(|(name, _)| name == "tokenize")
        .map(|(_, j)| *j)
        .collect();
    assert_eq!(jobs.len(), 4, "{spans:?}");
    let mut overlapped = 0;
    for pair in jobs.windows(2) {
        let model_end = spans[&("model_call".to_string(), pair[0])].1;
        let next_tokenize_start = spans[&("tokenize".to_string(), pair[1])].0;
        println!(
            "job {}: next tokenize started {:?} before its model calls ended",
            pair[0],
            model_end.saturating_duration_since(next_tokenize_start)
        );
        overlapped += usize::from(next_tokenize_start < model_end);
    }
    assert_eq!(
        overlapped, 3,
        "every next batch should be tokenized while the model runs"
    );
}
