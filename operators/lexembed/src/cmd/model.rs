//! `lexembed model info`: what a model directory says, and whether its provider loads.

use std::path::PathBuf;

use clap::Subcommand;
use lexembed_encoder::runtime::locate_library;

use lexembed_encoder::cli::EncoderArgs;

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Pooling, dims, max length, graph file, precision, outputs and provider of a model directory
    /// (loads it to check, and says where the graph's nodes run).
    Info {
        /// Model directory.
        dir: PathBuf,
        #[command(flatten)]
        encoder: EncoderArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: ModelCommand) -> anyhow::Result<()> {
    let ModelCommand::Info {
        dir,
        mut encoder,
        json,
    } = cmd;
    encoder.model = Some(dir);
    let enc = encoder.open(&[])?;
    let m = enc.model();
    let info = serde_json::json!({
        "model_id": m.model_id,
        "dir": m.dir,
        "onnx": enc.graph().path,
        "precision": enc.graph().precision.name(),
        "output": enc.session_info().output.name(),
        "io_binding": enc.session_info().io_binding,
        "placement": enc.session_info().placement.summary(),
        "pooling": m.pooling.name(),
        "normalize": m.normalize,
        "max_seq_length": m.max_seq_length,
        "prompts": m.prompts,
        "full_dim": m.full_dim,
        "dims": enc.dims().as_slice().iter().map(|d| d.0).collect::<Vec<_>>(),
        "provider": enc.provider().name(),
        "streams": enc.streams(),
        "token_budget": enc.token_budget().0,
        "max_batch_rows": enc.max_batch_rows(),
        "onnxruntime": locate_library(None).ok(),
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        for (k, v) in info.as_object().into_iter().flatten() {
            println!(
                "{k:>15}: {}",
                v.as_str().map_or_else(|| v.to_string(), str::to_string)
            );
        }
    }
    Ok(())
}
