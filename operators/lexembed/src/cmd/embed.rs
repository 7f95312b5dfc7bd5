//! `lexembed embed`: texts in (arguments or stdin lines), one JSON line per text out.

use std::io::{BufRead, Write};

use anyhow::Context;
use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{FixedSizeListArray, StringArray};
use clap::Args;
use lexembed_encoder::{Dim, Encoder};

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
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if !args.texts.is_empty() {
        return emit(&encoder, &args.texts, &dims, 0, &mut out);
    }
    let mut chunk = Vec::with_capacity(STDIN_CHUNK);
    let mut index = 0;
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        chunk.push(line.with_context(|| format!("stdin line {}", n + 1))?);
        if chunk.len() == STDIN_CHUNK {
            emit(&encoder, &chunk, &dims, index, &mut out)?;
            index += chunk.len();
            chunk.clear();
        }
    }
    emit(&encoder, &chunk, &dims, index, &mut out)
}

fn emit(
    encoder: &Encoder,
    texts: &[String],
    dims: &[Dim],
    first: usize,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if texts.is_empty() {
        return Ok(());
    }
    let arrays = encoder.encode_array(&StringArray::from_iter_values(texts), dims)?;
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
