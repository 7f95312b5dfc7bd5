//! Vectors must not depend on how inputs are batched: batch size, token budget or input order.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod common;

use lexembed_encoder::{Encoder, EncoderOptions, Prompt, TokenBudget};

fn sentences() -> Vec<String> {
    let g = common::golden(common::fixtures().join("tiny-xlmr.golden.json"));
    g.sentences
}

fn encode_with(budget: usize, rows: usize, texts: &[&str]) -> lexembed_encoder::Embeddings {
    let opts = EncoderOptions {
        token_budget: Some(TokenBudget(budget)),
        max_batch_rows: Some(rows),
        ..EncoderOptions::default()
    };
    Encoder::open(common::tiny_xlmr(), &opts)
        .unwrap()
        .encode(texts, &Prompt::none())
        .unwrap()
}

#[test]
fn batching_and_order_do_not_change_vectors() {
    let owned = sentences();
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let reference = encode_with(32, 1, &texts);
    for (budget, rows) in [(64, 2), (256, 7), (4096, 256)] {
        let got = encode_with(budget, rows, &texts);
        let diff = common::max_abs_diff(&got.values, &reference.values);
        assert!(
            diff <= 1e-6,
            "budget {budget} rows {rows}: max abs diff {diff}"
        );
    }
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.reverse();
    order.rotate_left(7);
    let shuffled: Vec<&str> = order.iter().map(|&i| texts[i]).collect();
    let got = encode_with(256, 16, &shuffled);
    for (pos, &i) in order.iter().enumerate() {
        let diff = common::max_abs_diff(got.row(pos), reference.row(i));
        assert!(diff <= 1e-6, "sentence {i} at position {pos}: {diff}");
    }
}

#[test]
fn token_budget_bounds_every_model_call() {
    let owned = sentences();
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let enc = Encoder::open(
        common::tiny_xlmr(),
        &EncoderOptions {
            token_budget: Some(TokenBudget(128)),
            ..EncoderOptions::default()
        },
    )
    .unwrap();
    enc.encode(&texts, &Prompt::none()).unwrap();
    let s = enc.stats();
    assert_eq!(s.rows, texts.len() as u64);
    assert!(s.model_calls > 1);
    assert!(s.padded_tokens <= s.model_calls * 128, "{s:?}");
    assert!(s.padded_tokens >= s.real_tokens);
}
