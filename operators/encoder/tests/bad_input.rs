//! Bad input gets a clear error naming the file, field or value: missing model file, unknown pooling,
//! a dim larger than the model's, a provider that cannot load, a non-text column.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod common;

use std::path::Path;

use arrow_array::Int64Array;
use lexembed_encoder::{
    Dim, Encoder, EncoderOptions, ModelDir, Prompt, PromptChoice, Provider, Role,
};

fn broken_copy(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    common::copy_dir(&common::tiny_xlmr(), tmp.path());
    edit(tmp.path());
    tmp
}

fn open_err(dir: &Path, opts: &EncoderOptions) -> String {
    match Encoder::open(dir, opts) {
        Ok(_) => panic!("{} opened", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_files_are_named() {
    for (file, expect) in [
        ("tokenizer.json", "tokenizer.json"),
        ("modules.json", "modules.json"),
        ("onnx/model.onnx", "onnx/model.onnx"),
        ("1_Pooling/config.json", "1_Pooling/config.json"),
    ] {
        let dir = broken_copy(|d| std::fs::remove_file(d.join(file)).unwrap());
        let err = open_err(dir.path(), &EncoderOptions::default());
        assert!(
            err.contains(expect) && err.contains("missing"),
            "{file}: {err}"
        );
    }
    let err = open_err(Path::new("/nonexistent/model"), &EncoderOptions::default());
    assert!(err.contains("/nonexistent/model"), "{err}");
}

#[test]
fn unknown_pooling_mode_is_named() {
    let dir = broken_copy(|d| {
        std::fs::write(
            d.join("1_Pooling/config.json"),
            r#"{"embedding_dimension": 64, "pooling_mode": "weightedmean"}"#,
        )
        .unwrap()
    });
    let err = open_err(dir.path(), &EncoderOptions::default());
    assert!(
        err.contains("weightedmean") && err.contains("1_Pooling/config.json"),
        "{err}"
    );
}

#[test]
fn corrupt_json_names_the_file() {
    let dir = broken_copy(|d| std::fs::write(d.join("modules.json"), "[{").unwrap());
    let err = open_err(dir.path(), &EncoderOptions::default());
    assert!(err.contains("modules.json"), "{err}");
}

#[test]
fn dim_larger_than_the_model_is_refused() {
    let err = open_err(
        &common::tiny_xlmr(),
        &EncoderOptions {
            extra_dims: vec![65],
            ..EncoderOptions::default()
        },
    );
    assert!(err.contains("65") && err.contains("64"), "{err}");
    let enc = Encoder::open(common::tiny_xlmr(), &EncoderOptions::default()).unwrap();
    let texts = arrow_array::StringArray::from(vec!["a"]);
    let err = enc
        .encode_array(&texts, &[Dim(128)], &Prompt::none())
        .unwrap_err()
        .to_string();
    assert!(err.contains("128") && err.contains("64"), "{err}");
}

#[test]
fn unavailable_providers_fail_loudly() {
    for provider in [
        Provider::parse("cuda").unwrap(),
        Provider::parse("tensorrt").unwrap(),
    ] {
        let name = provider.name();
        let err = open_err(
            &common::tiny_xlmr(),
            &EncoderOptions {
                provider,
                ..EncoderOptions::default()
            },
        );
        assert!(err.contains(name) && err.contains("not available"), "{err}");
    }
}

#[test]
fn non_text_column_is_refused() {
    let enc = Encoder::open(common::tiny_xlmr(), &EncoderOptions::default()).unwrap();
    let err = enc
        .encode_array(&Int64Array::from(vec![1, 2]), &[Dim(64)], &Prompt::none())
        .unwrap_err()
        .to_string();
    assert!(err.contains("Int64") && err.contains("Utf8"), "{err}");
}

#[test]
fn nulls_stay_null_and_empty_strings_embed() {
    use arrow_array::Array;
    let enc = Encoder::open(common::tiny_xlmr(), &EncoderOptions::default()).unwrap();
    let texts = arrow_array::StringArray::from(vec![Some("Artículo 1."), None, Some("")]);
    let out = enc
        .encode_array(&texts, &[Dim(64), Dim(8)], &Prompt::none())
        .unwrap();
    for a in &out {
        assert!(a.is_valid(0) && a.is_null(1) && a.is_valid(2));
    }
    let g = common::golden(common::fixtures().join("tiny-xlmr.golden.json"));
    let empty = g.sentences.iter().position(String::is_empty).unwrap();
    let got = out[0].value(2);
    let got = arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Float32Type>(&got);
    assert!(common::max_abs_diff(got.values(), &g.embeddings["64"][empty]) <= 1e-5);
}

#[test]
fn a_token_budget_below_the_max_length_is_refused() {
    let err = open_err(
        &common::tiny_xlmr(),
        &EncoderOptions {
            token_budget: Some(lexembed_encoder::TokenBudget(16)),
            ..EncoderOptions::default()
        },
    );
    assert!(err.contains("16") && err.contains("32"), "{err}");
    let enc = Encoder::open(common::tiny_xlmr(), &EncoderOptions::default()).unwrap();
    assert_eq!(enc.token_budget().0, 1024, "CPU default");
}

/// Prompts come from `config_sentence_transformers.json`; a default prompt name that names none of
/// them is refused naming the file, and a model without the file has no prompts.
#[test]
fn prompts_are_read_and_a_bad_default_is_named() {
    let with = |config: &str| {
        let config = config.to_string();
        broken_copy(move |d| {
            std::fs::write(d.join("config_sentence_transformers.json"), config).unwrap()
        })
    };
    let dir = with(
        r#"{"prompts": {"query": "query: ", "document": "passage: "}, "default_prompt_name": "query"}"#,
    );
    let model = lexembed_encoder::ModelDir::open(dir.path()).unwrap();
    assert_eq!(model.prompts.get("query"), Some("query: "));
    assert_eq!(model.prompts.get("document"), Some("passage: "));
    assert_eq!(model.prompts.default_prompt_name.as_deref(), Some("query"));
    let dir = with(r#"{"prompts": {"query": "query: "}, "default_prompt_name": "search"}"#);
    let e = open_err(dir.path(), &EncoderOptions::default());
    assert!(
        e.contains("config_sentence_transformers.json") && e.contains("\"search\""),
        "{e}"
    );
    let dir =
        broken_copy(|d| std::fs::remove_file(d.join("config_sentence_transformers.json")).unwrap());
    let model = lexembed_encoder::ModelDir::open(dir.path()).unwrap();
    assert!(model.prompts.prompts.is_empty());
}

/// A prompt name the model lacks is refused naming it and listing the model's prompts; a model
/// whose pooling leaves prompt tokens out (Instructor's `include_prompt: false`) is refused a prompt
/// rather than pooled wrongly, and may still embed without one; malformed prompts name the file.
#[test]
fn unknown_prompts_excluded_prompts_and_malformed_prompts_are_refused() {
    let prompts = r#"{"prompts": {"query": "query: ", "document": "passage: "}}"#;
    let dir = broken_copy(move |d| {
        std::fs::write(d.join("config_sentence_transformers.json"), prompts).unwrap()
    });
    let model = ModelDir::open(dir.path()).unwrap();
    let e = model
        .prompt_for(Role::Query, &PromptChoice::Named("search".into()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"search\"") && e.contains("[\"document\", \"query\"]"),
        "{e}"
    );
    assert_eq!(
        model
            .prompt_for(Role::Document, &PromptChoice::Literal("x: ".into()))
            .unwrap(),
        Prompt::literal("x: ")
    );

    let excluded = broken_copy(move |d| {
        std::fs::write(d.join("config_sentence_transformers.json"), prompts).unwrap();
        let pooling =
            r#"{"embedding_dimension": 64, "pooling_mode": "cls", "include_prompt": false}"#;
        std::fs::write(d.join("1_Pooling/config.json"), pooling).unwrap();
    });
    let model = ModelDir::open(excluded.path()).unwrap();
    let e = model
        .prompt_for(Role::Query, &PromptChoice::Model)
        .unwrap_err()
        .to_string();
    assert!(e.contains("include_prompt: false"), "{e}");
    assert_eq!(
        model.prompt_for(Role::Query, &PromptChoice::None).unwrap(),
        Prompt::none()
    );

    let malformed = broken_copy(|d| {
        std::fs::write(
            d.join("config_sentence_transformers.json"),
            r#"{"prompts": ["query: "]}"#,
        )
        .unwrap()
    });
    let e = open_err(malformed.path(), &EncoderOptions::default());
    assert!(e.contains("config_sentence_transformers.json"), "{e}");
}
