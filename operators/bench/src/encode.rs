//! `lexembed bench encode`: lexembed's encoder against (b) sentence-transformers `encode()` and (c) a
//! bare ONNX Runtime Python session running lexembed's own batches on the same ONNX file. Rounds
//! interleave (lexembed, st, ort, lexembed, …) through a long-lived Python child; medians are compared.
//!
//! With `--provider cuda` the same on the GPU: sentence-transformers in fp16 on CUDA (best of batch
//! 32/64/128), the bare session on lexembed's fp16 graph with IO binding, the model's busy fraction
//! (time inside model calls over wall time), and the min cosine of the GPU vectors against the fp32
//! graph on the CPU.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use lexembed_encoder::runtime::lexembed_home;
use lexembed_encoder::{Prompt, padding_ratio};

use super::{median, texts};
use lexembed_encoder::cli::EncoderArgs;

#[derive(Args, Debug)]
pub struct EncodeBenchArgs {
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// Texts: JSONL with title/text fields, or one text per line. Default: the BOE demo corpus.
    #[arg(long)]
    pub texts: Option<PathBuf>,
    /// How many texts.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Timed rounds per engine (after one warm-up round each).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Python with torch, sentence-transformers and onnxruntime.
    #[arg(long, env = "LEXEMBED_PYTHON", default_value = "python3")]
    pub python: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// JSONL fields that become texts, in order (`text` alone: whole articles, as the GPU runs use).
    #[arg(long, value_delimiter = ',', default_value = "title,text")]
    pub fields: Vec<String>,
    /// On a GPU: texts also embedded with the fp32 graph on the CPU, for the accuracy check.
    #[arg(long, default_value_t = 32)]
    pub fp32_sample: usize,
    /// On a GPU: sentence-transformers' batch-size search (32/64/128) runs on the first this many
    /// texts only (0: all), so the reference's warm-up costs seconds, not minutes.
    #[arg(long, default_value_t = 0)]
    pub st_search_texts: usize,
}

struct Reference {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// sentence-transformers' batch size (on a GPU: the best of 32/64/128, from the warm-up).
    st_batch: Option<u64>,
}

impl Reference {
    fn spawn(
        python: &str,
        model: &std::path::Path,
        dir: &std::path::Path,
        threads: usize,
        gpu_graph: Option<&std::path::Path>,
        search_texts: usize,
    ) -> anyhow::Result<Self> {
        let script = crate::repo_file("integration/python/bench_encode_ref.py");
        let mut cmd = Command::new(python);
        cmd.arg(&script)
            .arg(model)
            .arg(dir.join("texts.json"))
            .arg(dir.join("batches.json"))
            .args(["--threads", &threads.to_string()]);
        if let Some(graph) = gpu_graph {
            cmd.arg("--cuda").arg(graph);
        }
        if search_texts > 0 {
            cmd.args(["--search-texts", &search_texts.to_string()]);
        }
        let mut child = cmd
            .env("HF_HUB_OFFLINE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {python} {}", script.display()))?;
        let stdin = child.stdin.take().context("child stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("child stdout")?);
        Ok(Self {
            child,
            stdin,
            stdout,
            st_batch: None,
        })
    }

    fn ask(&mut self, cmd: &str) -> anyhow::Result<f64> {
        writeln!(self.stdin, "{cmd}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the reference engine exited (see its stderr above)");
        }
        let v: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("reference said {line:?}"))?;
        if let Some(b) = v["batch_size"].as_u64() {
            self.st_batch = Some(b);
        }
        v["seconds"]
            .as_f64()
            .context("reference answer without seconds")
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.wait();
    }
}

pub fn run(args: EncodeBenchArgs) -> anyhow::Result<()> {
    let path = args
        .texts
        .clone()
        .unwrap_or_else(|| lexembed_home().join("data/boe_articles.jsonl"));
    let texts = texts::load_fields(&path, args.limit, &args.fields)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut enc_args = args.encoder.clone();
    let gpu = !enc_args.provider.eq_ignore_ascii_case("cpu");
    let threads = enc_args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if !gpu {
        enc_args.threads = Some(threads);
    }
    let encoder = enc_args.open(&[])?;
    // No prompt, as the reference engines run (`encode()` of a model without a default prompt).
    let tokens = encoder.tokenize(&refs, &Prompt::none())?;
    let plan = encoder.plan_encode(&tokens)?;
    let lengths: Vec<usize> = tokens.iter().map(|t| t.0.len()).collect();
    let real_tokens: usize = lengths.iter().sum();

    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("texts.json"), serde_json::to_vec(&texts)?)?;
    let batches: Vec<&Vec<usize>> = plan.iter().map(|p| &p.rows).collect();
    std::fs::write(
        dir.path().join("batches.json"),
        serde_json::to_vec(&batches)?,
    )?;
    // The reference engines get the cores lexembed uses: every stream's threads (on a GPU the
    // reference runs its own session on the device).
    let reference_threads = if gpu {
        threads
    } else {
        threads * encoder.streams()
    };
    let mut reference = Reference::spawn(
        &args.python,
        &encoder.model().dir,
        dir.path(),
        reference_threads,
        gpu.then(|| encoder.graph().path.as_path()),
        args.st_search_texts,
    )?;

    let time_lexembed = || -> anyhow::Result<(f64, f64, lexembed_encoder::Embeddings)> {
        let before = encoder.stats().model_seconds();
        let t = Instant::now();
        let e = encoder.encode(&refs, &Prompt::none())?;
        let wall = t.elapsed().as_secs_f64();
        Ok((wall, encoder.stats().model_seconds() - before, e))
    };
    let (_, _, ours) = time_lexembed()?;
    // Warm-up rounds (on a GPU this also picks sentence-transformers' best batch size).
    reference.ask("st")?;
    reference.ask("ort")?;
    let (mut lex, mut busy, mut st, mut ort) = (vec![], vec![], vec![], vec![]);
    for round in 0..args.rounds.max(1) {
        let (wall, model, _) = time_lexembed()?;
        lex.push(wall);
        busy.push((model / wall).min(1.0));
        st.push(reference.ask("st")?);
        ort.push(reference.ask("ort")?);
        eprintln!(
            "round {}: lexembed {:.2}s, sentence-transformers {:.2}s, ort session {:.2}s",
            round + 1,
            lex[round],
            st[round],
            ort[round]
        );
    }
    let st_vectors = dir.path().join("st.f32");
    reference.ask(&format!("vectors {}", st_vectors.display()))?;
    let theirs = f32s_from_le(&std::fs::read(&st_vectors)?);
    let min_cos = min_cosine(&ours.values, &theirs, ours.dim);
    let max_abs = max_abs_diff(&ours.values, &theirs);
    let vs_fp32_cpu = if gpu {
        Some(min_cosine_vs_fp32_cpu(&args, &refs, &ours)?)
    } else {
        None
    };

    let (lex, st, ort) = (median(lex), median(st), median(ort));
    let info = encoder.session_info();
    let report = serde_json::json!({
        "model": encoder.model().model_id,
        "graph": encoder.graph().path,
        "precision": encoder.graph().precision.name(),
        "provider": encoder.provider().name(),
        "streams": encoder.streams(),
        "io_binding": info.io_binding,
        "placement": info.placement.summary(),
        "texts": texts.len(),
        "real_tokens": real_tokens,
        "threads": threads,
        "reference_threads": reference_threads,
        "token_budget": encoder.token_budget().0,
        "max_batch_rows": encoder.max_batch_rows(),
        "padding_ratio": padding_ratio(&lengths, &plan),
        "rounds": args.rounds,
        "model_busy_fraction": median(busy),
        "lexembed": {"seconds": lex, "texts_per_s": texts.len() as f64 / lex, "tokens_per_s": real_tokens as f64 / lex},
        "sentence_transformers": {"seconds": st, "texts_per_s": texts.len() as f64 / st, "tokens_per_s": real_tokens as f64 / st, "batch_size": reference.st_batch},
        "ort_session": {"seconds": ort, "texts_per_s": texts.len() as f64 / ort, "tokens_per_s": real_tokens as f64 / ort},
        "vs_sentence_transformers": st / lex,
        "vs_ort_session": ort / lex,
        "min_cosine_vs_sentence_transformers": min_cos,
        "max_abs_diff_vs_sentence_transformers": max_abs,
        "min_cosine_vs_fp32_cpu": vs_fp32_cpu,
    });
    if let Some(out) = &args.json_out {
        std::fs::write(out, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if args.json {
        println!("{report}");
    } else {
        print_table(&report);
    }
    Ok(())
}

/// Min cosine between the GPU vectors and the fp32 graph's on the CPU, over the first
/// `--fp32-sample` texts: what fp16 and the GPU kernels cost in accuracy.
fn min_cosine_vs_fp32_cpu(
    args: &EncodeBenchArgs,
    texts: &[&str],
    gpu: &lexembed_encoder::Embeddings,
) -> anyhow::Result<f64> {
    let mut cpu = args.encoder.clone();
    cpu.provider = "cpu".into();
    cpu.precision = "fp32".into();
    cpu.streams = None;
    cpu.threads = None;
    cpu.max_batch_rows = None;
    cpu.token_budget = None;
    let n = args.fp32_sample.min(texts.len());
    let reference = cpu.open(&[])?.encode(&texts[..n], &Prompt::none())?;
    Ok(min_cosine(
        &gpu.values[..n * gpu.dim],
        &reference.values,
        gpu.dim,
    ))
}

fn print_table(r: &serde_json::Value) {
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    println!(
        "{} on {} ({} graph, {} stream(s), IO binding {}): {} texts, {} real tokens, {} threads \
         (references: {}), token budget {}, rows ≤ {}, padding ratio {:.3}, median of {} rounds",
        r["model"].as_str().unwrap_or("?"),
        r["provider"].as_str().unwrap_or("?"),
        r["precision"].as_str().unwrap_or("?"),
        r["streams"],
        r["io_binding"],
        r["texts"],
        r["real_tokens"],
        r["threads"],
        r["reference_threads"],
        r["token_budget"],
        r["max_batch_rows"],
        f(&r["padding_ratio"]),
        r["rounds"]
    );
    println!(
        "{:<24} {:>9} {:>10} {:>11}",
        "engine", "seconds", "texts/s", "tokens/s"
    );
    for k in ["lexembed", "sentence_transformers", "ort_session"] {
        let e = &r[k];
        println!(
            "{k:<24} {:>9.3} {:>10.1} {:>11.0}",
            f(&e["seconds"]),
            f(&e["texts_per_s"]),
            f(&e["tokens_per_s"])
        );
    }
    println!(
        "vs_sentence_transformers {:.3}x   vs_ort_session {:.3}x   model busy {:.1}%   min cosine vs \
         sentence-transformers {:.7}",
        f(&r["vs_sentence_transformers"]),
        f(&r["vs_ort_session"]),
        100.0 * f(&r["model_busy_fraction"]),
        f(&r["min_cosine_vs_sentence_transformers"])
    );
    if let Some(c) = r["min_cosine_vs_fp32_cpu"].as_f64() {
        println!("min cosine of these vectors vs the fp32 graph on the CPU: {c:.7}");
    }
}

/// Little-endian float32s, as numpy's `tofile` writes them.
fn f32s_from_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The largest difference of any component (the vectors are unit length).
fn max_abs_diff(ours: &[f32], theirs: &[f32]) -> f64 {
    ours.iter()
        .zip(theirs)
        .map(|(a, b)| f64::from((a - b).abs()))
        .fold(0.0, f64::max)
}

fn min_cosine(ours: &[f32], theirs: &[f32], dim: usize) -> f64 {
    lexembed_encoder::similarity::min_row_cosine(ours, theirs, dim)
}
