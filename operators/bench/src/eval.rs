//! `lexembed bench eval`: the metric computation alone (vectors given) for 2,373 queries × 20,000
//! documents × 6 Matryoshka dims (1024 … 64), against a numpy implementation of the same computation
//! on the same vectors, rounds interleaved.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use lexembed_eval::{Corpus, MetricConfig, QaPair, evaluate};

use super::median;

#[derive(Args, Debug)]
pub struct EvalBenchArgs {
    #[arg(long, default_value_t = 2373)]
    pub queries: usize,
    #[arg(long, default_value_t = 20000)]
    pub docs: usize,
    #[arg(long, default_value_t = 1024)]
    pub width: usize,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[arg(long, env = "LEXEMBED_PYTHON", default_value = "python3")]
    pub python: String,
    #[arg(long)]
    pub json: bool,
}

/// Deterministic pseudo-random vectors (xorshift), with each query near its relevant document so the
/// metrics are not all zero.
fn vectors(args: &EvalBenchArgs) -> (Vec<f32>, Vec<f32>, Vec<usize>) {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let corpus: Vec<f32> = (0..args.docs * args.width).map(|_| next()).collect();
    let relevant: Vec<usize> = (0..args.queries).map(|i| (i * 7919) % args.docs).collect();
    let queries: Vec<f32> = relevant
        .iter()
        .flat_map(|&r| corpus[r * args.width..(r + 1) * args.width].to_vec())
        .map(|v| v + 0.8 * next())
        .collect();
    (queries, corpus, relevant)
}

pub fn run(args: EvalBenchArgs) -> anyhow::Result<()> {
    let dims: Vec<u32> = [1024u32, 768, 512, 256, 128, 64]
        .into_iter()
        .filter(|&d| d as usize <= args.width)
        .collect();
    let (queries, corpus_v, relevant) = vectors(&args);
    let corpus = Corpus {
        ids: (0..args.docs).map(|i| format!("d{i}")).collect(),
        width: args.width,
        vectors: corpus_v,
    };
    let qa: Vec<QaPair> = relevant
        .iter()
        .enumerate()
        .map(|(i, &r)| QaPair {
            query_id: format!("q{i}"),
            query: String::new(),
            relevant_ids: BTreeSet::from([format!("d{r}")]),
        })
        .collect();
    let dir = tempfile::tempdir()?;
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    std::fs::write(dir.path().join("queries.f32"), bytes(&queries))?;
    std::fs::write(dir.path().join("corpus.f32"), bytes(&corpus.vectors))?;
    std::fs::write(
        dir.path().join("meta.json"),
        serde_json::to_vec(
            &serde_json::json!({"q": args.queries, "c": args.docs, "width": args.width, "dims": dims, "relevant": relevant}),
        )?,
    )?;
    let script = crate::repo_file("integration/python/bench_eval_ref.py");
    let mut child = Command::new(&args.python)
        .arg(&script)
        .arg(dir.path())
        .arg((args.rounds + 1).to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} {}", args.python, script.display()))?;
    let mut numpy_in = child.stdin.take().context("numpy stdin")?;
    let mut numpy_out = BufReader::new(child.stdout.take().context("numpy stdout")?).lines();
    let mut numpy_round = || -> anyhow::Result<f64> {
        writeln!(numpy_in, "go")?;
        numpy_in.flush()?;
        let line = numpy_out.next().context("numpy reference exited")??;
        let v: serde_json::Value = serde_json::from_str(&line)?;
        v["seconds"].as_f64().context("no seconds")
    };
    let cfg = MetricConfig::default();
    let ours = || -> anyhow::Result<f64> {
        let t = Instant::now();
        evaluate(&corpus, &queries, &qa, &dims, &cfg)?;
        Ok(t.elapsed().as_secs_f64())
    };
    // Warm-up round each (the child runs its rounds back to back, ours interleave with them).
    ours()?;
    numpy_round()?;
    let (mut l, mut n) = (vec![], vec![]);
    for r in 0..args.rounds.max(1) {
        l.push(ours()?);
        n.push(numpy_round()?);
        eprintln!("round {}: lexembed {:.3}s, numpy {:.3}s", r + 1, l[r], n[r]);
    }
    let _ = child.wait();
    let (l, n) = (median(l), median(n));
    let report = serde_json::json!({
        "queries": args.queries, "docs": args.docs, "dims": dims, "threads": rayon::current_num_threads(),
        "lexembed_seconds": l, "numpy_seconds": n, "vs_numpy": n / l,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{} queries × {} docs × dims {:?}, median of {} rounds",
            args.queries, args.docs, dims, args.rounds
        );
        println!("lexembed {l:.3}s   numpy {n:.3}s   vs_numpy {:.2}x", n / l);
    }
    Ok(())
}
