//! `lexembed bench encode`: lexembed's encoder against (b) sentence-transformers `encode()` and (c) a
//! bare ONNX Runtime Python session running lexembed's own batches on the same ONNX file. Rounds
//! interleave (lexembed, st, ort, lexembed, …) through a long-lived Python child; medians are compared.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use lexembed_encoder::padding_ratio;
use lexembed_encoder::runtime::lexembed_home;

use super::{median, texts};
use crate::encoder_args::EncoderArgs;

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
}

struct Reference {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Reference {
    fn spawn(
        python: &str,
        model: &std::path::Path,
        dir: &std::path::Path,
        threads: usize,
    ) -> anyhow::Result<Self> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../integration/python/bench_encode_ref.py");
        let mut child = Command::new(python)
            .arg(&script)
            .arg(model)
            .arg(dir.join("texts.json"))
            .arg(dir.join("batches.json"))
            .args(["--threads", &threads.to_string()])
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
    let texts = texts::load(&path, args.limit)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let threads = args
        .encoder
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut enc_args = args.encoder.clone();
    enc_args.threads = Some(threads);
    let encoder = enc_args.open(&[])?;
    let tokens = encoder.tokenize(&refs)?;
    let plan = encoder.plan(&tokens)?;
    let lengths: Vec<usize> = tokens.iter().map(|t| t.0.len()).collect();
    let real_tokens: usize = lengths.iter().sum();

    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("texts.json"), serde_json::to_vec(&texts)?)?;
    let batches: Vec<&Vec<usize>> = plan.iter().map(|p| &p.rows).collect();
    std::fs::write(
        dir.path().join("batches.json"),
        serde_json::to_vec(&batches)?,
    )?;
    let mut reference = Reference::spawn(&args.python, &encoder.model().dir, dir.path(), threads)?;

    let time_lexembed = || -> anyhow::Result<(f64, lexembed_encoder::Embeddings)> {
        let t = Instant::now();
        let e = encoder.encode(&refs)?;
        Ok((t.elapsed().as_secs_f64(), e))
    };
    let (_, ours) = time_lexembed()?;
    reference.ask("st")?;
    reference.ask("ort")?;
    let (mut lex, mut st, mut ort) = (vec![], vec![], vec![]);
    for round in 0..args.rounds.max(1) {
        lex.push(time_lexembed()?.0);
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
    let min_cos = min_cosine(&ours.values, &std::fs::read(&st_vectors)?, ours.dim);

    let (lex, st, ort) = (median(lex), median(st), median(ort));
    let report = serde_json::json!({
        "model": encoder.model().model_id,
        "texts": texts.len(),
        "real_tokens": real_tokens,
        "threads": threads,
        "token_budget": encoder.token_budget().0,
        "padding_ratio": padding_ratio(&lengths, &plan),
        "rounds": args.rounds,
        "lexembed": {"seconds": lex, "texts_per_s": texts.len() as f64 / lex, "tokens_per_s": real_tokens as f64 / lex},
        "sentence_transformers": {"seconds": st, "texts_per_s": texts.len() as f64 / st, "tokens_per_s": real_tokens as f64 / st},
        "ort_session": {"seconds": ort, "texts_per_s": texts.len() as f64 / ort, "tokens_per_s": real_tokens as f64 / ort},
        "vs_sentence_transformers": st / lex,
        "vs_ort_session": ort / lex,
        "min_cosine_vs_sentence_transformers": min_cos,
    });
    if args.json {
        println!("{report}");
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &serde_json::Value) {
    println!(
        "{} texts, {} real tokens, {} threads, token budget {}, padding ratio {:.3}, median of {} rounds",
        r["texts"],
        r["real_tokens"],
        r["threads"],
        r["token_budget"],
        r["padding_ratio"].as_f64().unwrap_or(0.0),
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
            e["seconds"].as_f64().unwrap_or(0.0),
            e["texts_per_s"].as_f64().unwrap_or(0.0),
            e["tokens_per_s"].as_f64().unwrap_or(0.0)
        );
    }
    println!(
        "vs_sentence_transformers {:.3}x   vs_ort_session {:.3}x   min cosine vs sentence-transformers {:.7}",
        r["vs_sentence_transformers"].as_f64().unwrap_or(0.0),
        r["vs_ort_session"].as_f64().unwrap_or(0.0),
        r["min_cosine_vs_sentence_transformers"]
            .as_f64()
            .unwrap_or(0.0)
    );
}

fn min_cosine(ours: &[f32], theirs: &[u8], dim: usize) -> f64 {
    let theirs: Vec<f32> = theirs
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    ours.chunks_exact(dim)
        .zip(theirs.chunks_exact(dim))
        .map(|(a, b)| {
            let dot: f64 = a
                .iter()
                .zip(b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            dot / (na * nb).max(1e-30)
        })
        .fold(f64::INFINITY, f64::min)
}
