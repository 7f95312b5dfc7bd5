//! Execution providers: registering CPU, CUDA or TensorRT (with CUDA behind it for the nodes TensorRT
//! does not take) on a session builder, and refusing a provider the loaded library does not have.

use std::path::Path;

use ort::ep;

use super::session::SessionOptions;
use super::{Provider, TensorRtOptions, tensorrt_profiles};
use crate::error::{EncoderError, Result};

pub(super) fn register_provider(
    builder: ort::session::builder::SessionBuilder,
    opts: &SessionOptions,
    onnx: &Path,
) -> Result<ort::session::builder::SessionBuilder> {
    let dispatch = match &opts.provider {
        Provider::Cpu => return Ok(builder),
        Provider::Cuda(c) => {
            require_compiled::<ep::CUDA>(
                "cuda",
                "install the onnxruntime-gpu build and point ORT_DYLIB_PATH at it",
            )?;
            let mut cuda = ep::CUDA::default()
                .with_device_id(c.device_id)
                .with_cuda_graph(c.cuda_graph);
            if let Some(limit) = c.memory_limit {
                cuda = cuda.with_memory_limit(limit);
            }
            cuda.build().error_on_failure()
        }
        Provider::TensorRt(t) => {
            require_compiled::<ep::TensorRT>(
                "tensorrt",
                "this ONNX Runtime build has no TensorRT provider (needs onnxruntime-gpu and TensorRT 10 libraries, libnvinfer)",
            )?;
            require_compiled::<ep::CUDA>(
                "tensorrt",
                "TensorRT needs the CUDA provider behind it for the nodes it does not take",
            )?;
            let trt = tensorrt_dispatch(t, opts).build().error_on_failure();
            let cuda = ep::CUDA::default()
                .with_device_id(t.device_id)
                .build()
                .error_on_failure();
            return register(builder, [trt, cuda], opts, onnx);
        }
    };
    register(builder, [dispatch], opts, onnx)
}

fn register<const N: usize>(
    builder: ort::session::builder::SessionBuilder,
    dispatch: [ort::ep::ExecutionProviderDispatch; N],
    opts: &SessionOptions,
    onnx: &Path,
) -> Result<ort::session::builder::SessionBuilder> {
    let name = opts.provider.name();
    builder
        .with_execution_providers(dispatch)
        .map_err(|e| EncoderError::ProviderUnavailable {
            provider: name.to_string(),
            reason: format!("registering it for {} failed: {e}", onnx.display()),
        })
}

fn tensorrt_dispatch(t: &TensorRtOptions, opts: &SessionOptions) -> ep::TensorRT {
    let names = ["input_ids", "attention_mask"];
    let (min, opt, max) = tensorrt_profiles(
        &names,
        opts.token_budget.max(1),
        opts.max_batch_rows.max(1),
        opts.max_seq_len.max(1),
    );
    let mut trt = ep::TensorRT::default()
        .with_device_id(t.device_id)
        .with_fp16(t.fp16)
        .with_profile_min_shapes(min)
        .with_profile_opt_shapes(opt)
        .with_profile_max_shapes(max);
    if let Some(dir) = &t.engine_cache_dir {
        trt = trt
            .with_engine_cache(true)
            .with_engine_cache_path(dir.display())
            .with_timing_cache(true)
            .with_timing_cache_path(dir.display());
    }
    trt
}

/// Errors unless the loaded ONNX Runtime was built with provider `E`.
fn require_compiled<E: ort::ep::ExecutionProvider>(name: &str, hint: &str) -> Result<()> {
    match E::is_available() {
        Ok(true) => Ok(()),
        Ok(false) => Err(EncoderError::ProviderUnavailable {
            provider: name.to_string(),
            reason: format!("the loaded ONNX Runtime library does not include it; {hint}"),
        }),
        Err(e) => Err(EncoderError::ProviderUnavailable {
            provider: name.to_string(),
            reason: e.to_string(),
        }),
    }
}
