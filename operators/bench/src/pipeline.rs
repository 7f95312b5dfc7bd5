//! `lexembed bench pipeline`: a whole pipeline run (read JSONL, embed, write one Lance commit, no index)
//! against a bare encoder run over the same rows in the same batches, interleaved in one process.
//! Reports rows/s of both, the pipeline's overhead over the bare encoder, and how long the model sat
//! idle between calls during the pipeline (wall time less the model's busy time).

use std::time::Instant;

use anyhow::Context;
use arrow_array::StringArray;
use clap::Args;
use lexembed_encoder::{PromptChoice, Role};
use lexembed_pipeline::{LoadedSpec, RunOptions, open_encoder, run_pipeline};

use super::median;

#[derive(Args, Debug)]
pub struct PipelineBenchArgs {
    #[command(flatten)]
    pub input: super::texts::CorpusArgs,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: PipelineBenchArgs) -> anyhow::Result<()> {
    let corpus = args.input.corpus();
    let text = std::fs::read_to_string(&corpus)
        .with_context(|| format!("{}: run integration/setup.sh", corpus.display()))?;
    let lines: Vec<&str> = text.lines().take(args.input.limit).collect();
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("docs.jsonl");
    std::fs::write(&input, lines.join("\n"))?;
    let model = args.input.model();
    let batch_rows = 512;
    let spec_text = format!(
        "name: bench\nsource:\n  kind: file\n  path: {}\n  metadata_fields: [law, title]\n  batch_rows: {batch_rows}\nencoder:\n  model: {}\nsink:\n  uri: {}/out.lance\n  mode: overwrite\n",
        input.display(),
        model.display(),
        dir.path().display()
    );
    let spec_file = dir.path().join("bench.yaml");
    std::fs::write(&spec_file, spec_text)?;
    let spec = LoadedSpec::load(&spec_file)?;

    // The bare encoder: the same texts, the same batches of rows, the same dims, nothing else.
    let encoder = open_encoder(&spec.spec.encoder, |p| p.to_string())?;
    let dims = encoder.dims().as_slice().to_vec();
    // The pipeline puts the model's document prompt before every text: so does the bare run.
    let prompt = encoder.prompt(Role::Document, &PromptChoice::Model)?;
    let texts: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .map(|v| v["text"].as_str().unwrap_or_default().to_string())
        })
        .collect::<Result<_, _>>()?;
    let bare = || -> anyhow::Result<f64> {
        let t = Instant::now();
        for chunk in texts.chunks(batch_rows) {
            encoder.encode_array(&StringArray::from_iter_values(chunk), &dims, &prompt)?;
        }
        Ok(t.elapsed().as_secs_f64())
    };
    bare()?;
    let io = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (mut p, mut b, mut in_encoder) = (vec![], vec![], vec![]);
    for round in 0..args.rounds.max(1) {
        let s = run_pipeline(&spec, &RunOptions::default(), io.handle())?;
        p.push(s.seconds);
        in_encoder.push(s.encoder_seconds / s.seconds);
        b.push(bare()?);
        eprintln!(
            "round {}: pipeline {:.2}s ({:.0}% in the encoder), bare encoder {:.2}s",
            round + 1,
            p[round],
            100.0 * in_encoder[round],
            b[round]
        );
    }
    let (p, b, share) = (median(p), median(b), median(in_encoder));
    let rows = texts.len() as f64;
    let overhead = (p - b) / b;
    let report = serde_json::json!({
        "rows": texts.len(), "model": encoder.model().model_id, "dims": dims.iter().map(|d| d.0).collect::<Vec<_>>(),
        "pipeline": {"seconds": p, "rows_per_s": rows / p, "encoder_share": share,
                     "model_idle_seconds": p * (1.0 - share)},
        "bare_encoder": {"seconds": b, "rows_per_s": rows / b},
        "overhead_vs_encoder": overhead,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{} rows of {}, dims {:?}, median of {} rounds",
            texts.len(),
            corpus.display(),
            report["dims"],
            args.rounds
        );
        println!(
            "pipeline      {p:>8.2}s  {:>8.1} rows/s  ({:.1}% of wall time in the encoder)",
            rows / p,
            100.0 * share
        );
        println!(
            "model idle    {:>8.2}s  between model calls, while reading, tokenizing or writing ({:.1}%)",
            p * (1.0 - share),
            100.0 * (1.0 - share)
        );
        println!("bare encoder  {b:>8.2}s  {:>8.1} rows/s", rows / b);
        println!(
            "pipeline overhead (read + write + commit) vs encoder time: {:+.1}%",
            100.0 * overhead
        );
    }
    Ok(())
}
