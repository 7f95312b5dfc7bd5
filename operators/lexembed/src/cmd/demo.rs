//! `lexembed demo`: the smallest end-to-end run. Embeds questions and BOE-style passages and prints, for
//! each question, the passages ranked by cosine similarity at every Matryoshka dim.

use clap::Args;
use lexembed_encoder::{Dim, PromptChoice, Role};

use lexembed_encoder::cli::EncoderArgs;

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

const QUESTIONS: [&str; 3] = [
    "¿Cuál es el plazo máximo para resolver un procedimiento administrativo?",
    "¿Qué dividendos pueden someterse a imposición en el otro Estado?",
    "¿Quién está obligado a pagar el IRPF?",
];

const PASSAGES: [&str; 4] = [
    "El plazo máximo en el que debe notificarse la resolución expresa será el fijado por la norma reguladora del correspondiente procedimiento, y no podrá exceder de seis meses.",
    "Los dividendos pagados por una sociedad residente de un Estado contratante a un residente del otro Estado pueden someterse a imposición en este último Estado.",
    "Son contribuyentes por el Impuesto sobre la Renta de las Personas Físicas las personas físicas que tengan su residencia habitual en territorio español.",
    "Esta Ley entrará en vigor el día siguiente al de su publicación en el «Boletín Oficial del Estado».",
];

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let enc = args.encoder.open(&[])?;
    // As search does: questions with the model's query prompt, passages with its document prompt.
    let q = enc.encode(&QUESTIONS, &enc.prompt(Role::Query, &PromptChoice::Model)?)?;
    let p = enc.encode(
        &PASSAGES,
        &enc.prompt(Role::Document, &PromptChoice::Model)?,
    )?;
    println!(
        "model {} ({} dims, {} pooling)",
        enc.model().model_id,
        enc.model().full_dim,
        enc.model().pooling.name()
    );
    let dims: Vec<Dim> = enc.dims().as_slice().to_vec();
    for (qi, question) in QUESTIONS.iter().enumerate() {
        println!("\n{question}");
        let mut scored: Vec<(usize, f64)> = (0..PASSAGES.len())
            .map(|pi| (pi, cosine_at(q.row(qi), p.row(pi), dims[0])))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (pi, _) in scored {
            let per_dim: Vec<String> = dims
                .iter()
                .map(|&d| format!("{d}:{:.3}", cosine_at(q.row(qi), p.row(pi), d)))
                .collect();
            println!("  [{}] {:.70}…", per_dim.join(" "), PASSAGES[pi]);
        }
    }
    Ok(())
}

/// Cosine of the first `d` values: the Matryoshka prefix similarity.
fn cosine_at(a: &[f32], b: &[f32], d: Dim) -> f64 {
    lexembed_encoder::similarity::cosine(&a[..d.get()], &b[..d.get()])
}
