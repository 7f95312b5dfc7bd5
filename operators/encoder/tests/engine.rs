//! The engine under the `Encoder`: IO binding against the plain path, buffers that stop growing after
//! warm-up, several sessions at once, node placement read from ONNX Runtime's profile, and the encoder
//! stage (order, pass-through, errors).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, StringArray};
use lexembed_encoder::runtime::{CudaOptions, check_placement};
use lexembed_encoder::{Dim, EncodeStage, Encoder, EncoderOptions, Prompt, Provider, StageModel};

fn texts() -> Vec<String> {
    common::sentences()
}

fn open(dir: &Path, opts: EncoderOptions) -> Encoder {
    Encoder::open(dir, &opts).unwrap()
}

fn encode(enc: &Encoder, texts: &[String]) -> Vec<f32> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    enc.encode(&refs, &Prompt::none()).unwrap().values
}

#[test]
fn io_binding_gives_the_plain_paths_vectors() {
    for dir in [common::tiny_xlmr(), common::minilm()] {
        let bound = open(&dir, EncoderOptions::default());
        let plain = open(
            &dir,
            EncoderOptions {
                io_binding: false,
                ..EncoderOptions::default()
            },
        );
        assert!(bound.session_info().io_binding, "{}", dir.display());
        assert!(!plain.session_info().io_binding);
        let (a, b) = (encode(&bound, &texts()), encode(&plain, &texts()));
        let diff = common::max_abs_diff(&a, &b);
        println!("{}: max abs diff bound vs plain {diff:e}", dir.display());
        assert!(diff <= 1e-6, "{}: {diff}", dir.display());
    }
}

#[test]
fn buffers_stop_growing_after_warm_up() {
    let enc = open(&common::minilm(), EncoderOptions::default());
    let t = texts();
    encode(&enc, &t);
    let warm = enc.stats();
    assert!(warm.buffer_growths > 0, "the counter counts: {warm:?}");
    for _ in 0..3 {
        encode(&enc, &t);
    }
    let after = enc.stats();
    assert!(after.model_calls >= 4 * warm.model_calls);
    assert_eq!(
        after.buffer_growths, warm.buffer_growths,
        "model calls after warm-up allocated id/mask/output buffers"
    );
}

#[test]
fn two_streams_give_the_same_vectors_as_one() {
    let dir = common::minilm();
    let one = open(&dir, EncoderOptions::default());
    let two = open(
        &dir,
        EncoderOptions {
            streams: Some(2),
            intra_threads: Some(1),
            token_budget: Some(lexembed_encoder::TokenBudget(512)),
            ..EncoderOptions::default()
        },
    );
    assert_eq!((one.streams(), two.streams()), (1, 2));
    let t = texts();
    let diff = common::max_abs_diff(&encode(&one, &t), &encode(&two, &t));
    assert!(diff <= 1e-6, "{diff}");
    assert!(two.stats().model_calls > 2, "the work was split over calls");
}

#[test]
fn placement_comes_from_the_profile_and_refuses_cpu_nodes_for_gpus() {
    let enc = open(&common::minilm(), EncoderOptions::default());
    let p = &enc.session_info().placement;
    println!("{}", p.summary());
    assert!(p.nodes["CPUExecutionProvider"] > 10, "{p:?}");
    assert!(p.heavy_on_cpu.contains_key("Attention"), "{p:?}");
    // The same placement in a CUDA session would be a CPU run in disguise: refused.
    let cuda = Provider::Cuda(CudaOptions::default());
    let err = check_placement(&cuda, p).unwrap_err().to_string();
    assert!(err.contains("Attention") && err.contains("cuda"), "{err}");
}

/// ONNX Runtime's CPU SkipLayerNormalization kernel is 3-4x slower than the Add + LayerNormalization it
/// fuses: the exported CPU graphs keep them apart and the CPU session does not fuse them back, while the
/// rest of the graph stays fused (Attention, BiasGelu).
#[test]
fn cpu_sessions_run_layer_norm_apart_from_the_residual_add() {
    for dir in [common::minilm(), common::e5()] {
        let enc = open(&dir, EncoderOptions::default());
        let p = &enc.session_info().placement;
        println!("{}: {:?}", dir.display(), p.heavy_on_cpu);
        assert!(
            !p.heavy_on_cpu.contains_key("SkipLayerNormalization"),
            "{}: {p:?}",
            dir.display()
        );
        for fused in ["Attention", "BiasGelu"] {
            assert!(
                p.heavy_on_cpu.contains_key(fused),
                "{}: {p:?}",
                dir.display()
            );
        }
    }
}

#[test]
fn the_stage_keeps_order_passes_items_through_and_reports_errors() {
    let enc = Arc::new(open(&common::tiny_xlmr(), EncoderOptions::default()));
    let t = texts();
    let batches: Vec<Result<ArrayRef, String>> = vec![
        Ok(Arc::new(StringArray::from(vec![
            t[0].as_str(),
            t[1].as_str(),
        ]))),
        Err("not text".into()),
        Ok(Arc::new(StringArray::from(vec![Some(t[2].as_str()), None]))),
        Ok(Arc::new(arrow_array::Int64Array::from(vec![1]))),
    ];
    // The stage puts its prompt before every text, as `encode` does.
    let prompt = Prompt::literal("passage: ");
    let model = StageModel {
        encoder: enc.clone(),
        dims: vec![Dim(64), Dim(8)],
        prompt: prompt.clone(),
    };
    let stage = EncodeStage::spawn(model, 1, batches, |b: &Result<ArrayRef, String>| {
        b.as_ref().ok().cloned()
    })
    .unwrap();
    let out: Vec<_> = stage.map(Result::unwrap).collect();
    assert_eq!(out.len(), 4);
    let first = out[0].vectors.as_ref().unwrap().as_ref().unwrap();
    let want = enc
        .encode(&[t[0].as_str(), t[1].as_str()], &prompt)
        .unwrap();
    let row1 = first[0].value(1);
    let row1 = arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Float32Type>(&row1);
    assert!(common::max_abs_diff(row1.values(), &want.prefix(1, Dim(64))) <= 1e-6);
    assert!(out[1].vectors.is_none() && out[1].item.is_err());
    let third = out[2].vectors.as_ref().unwrap().as_ref().unwrap();
    assert!(arrow_array::Array::is_null(&third[1], 1));
    let err = out[3].vectors.as_ref().unwrap().as_ref().err().unwrap();
    assert!(err.to_string().contains("Int64"), "{err}");
}
