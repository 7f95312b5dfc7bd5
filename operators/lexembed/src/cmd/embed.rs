//! `lexembed embed`: texts in (arguments or stdin lines), one JSON line per text out.

use std::io::{BufRead, Write};

use anyhow::Context;
use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{FixedSizeListArray, StringArray};
use clap::Args;
use lexembed_encoder::{Dim, Encoder, Prompt, PromptChoice, Role};

use lexembed_encoder::cli::EncoderArgs;

/// Lines embedded per model call when reading stdin: keeps memory bounded on endless input.
const STDIN_CHUNK: usize = 512;

#[derive(Args, Debug)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// Matryoshka dims to print (repeatable). Default: every dim the model serves.
    #[arg(long = "dim")]
    pub dims: Vec<u32>,
    /// Prompt put before every text: one of the model's prompt names (`query`, `document`, …),
    /// `none`, or `text:LITERAL`. Default: the model's default prompt (`default_prompt_name` of
    /// config_sentence_transformers.json), else none, as sentence-transformers' `encode()`.
    #[arg(long)]
    pub prompt: Option<String>,
    /// Texts to embed. Without any, one text per line is read from stdin.
    pub texts: Vec<String>,
}

pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
    let encoder = args.encoder.open(&args.dims)?;
    let dims: Vec<Dim> = if args.dims.is_empty() {
        encoder.dims().as_slice().to_vec()
    } else {
        args.dims.iter().map(|&d| Dim(d)).collect()
    };
    let prompt = match &args.prompt {
        None => encoder.model().default_prompt(),
        Some(p) => encoder
            .prompt(Role::Document, &PromptChoice::parse(p))
            .context("--prompt")?,
    };
    let job = Job {
        encoder: &encoder,
        prompt: &prompt,
        dims: &dims,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if !args.texts.is_empty() {
        return job.emit(&args.texts, 0, &mut out);
    }
    let mut chunk = Vec::with_capacity(STDIN_CHUNK);
    let mut index = 0;
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        chunk.push(line.with_context(|| format!("stdin line {}", n + 1))?);
        if chunk.len() == STDIN_CHUNK {
            job.emit(&chunk, index, &mut out)?;
            index += chunk.len();
            chunk.clear();
        }
    }
    job.emit(&chunk, index, &mut out)
}

/// What every chunk is embedded with.
struct Job<'a> {
    encoder: &'a Encoder,
    prompt: &'a Prompt,
    dims: &'a [Dim],
}

impl Job<'_> {
    fn emit(&self, texts: &[String], first: usize, out: &mut impl Write) -> anyhow::Result<()> {
        let dims = self.dims;
        if texts.is_empty() {
            return Ok(());
        }
        let arrays =
            self.encoder
                .encode_array(&StringArray::from_iter_values(texts), dims, self.prompt)?;
        for row in 0..texts.len() {
            let embeddings = PerDim(
                dims.iter()
                    .zip(&arrays)
                    .map(|(d, a)| (*d, row_values(a, row)))
                    .collect(),
            );
            serde_json::to_writer(
                &mut *out,
                &Line {
                    index: first + row,
                    embeddings,
                },
            )?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(())
    }
}

/// One output line. Field order and f32 formatting (shortest round-trip form) are part of the output.
#[derive(serde::Serialize)]
struct Line {
    index: usize,
    embeddings: PerDim,
}

/// `{"<dim>": [..], ...}` in the order the dims were asked for.
struct PerDim(Vec<(Dim, Vec<f32>)>);

impl serde::Serialize for PerDim {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (d, v) in &self.0 {
            m.serialize_entry(&d.to_string(), v)?;
        }
        m.end()
    }
}

fn row_values(a: &FixedSizeListArray, row: usize) -> Vec<f32> {
    a.value(row).as_primitive::<Float32Type>().values().to_vec()
}
