//! `lexembed validate FILE...` and `lexembed schema`: check specs without running them; print the spec's
//! JSON Schema.

use std::path::PathBuf;

use clap::Args;
use lexembed_pipeline::{LoadedSpec, json_schema};

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// Pipeline specs to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(args: ValidateArgs) -> anyhow::Result<()> {
    let mut bad = 0;
    for f in &args.files {
        match LoadedSpec::load(f) {
            Ok(_) => println!("{}: ok", f.display()),
            Err(e) => {
                bad += 1;
                eprintln!("{e}");
            }
        }
    }
    anyhow::ensure!(bad == 0, "{bad} of {} specs are invalid", args.files.len());
    Ok(())
}

pub fn schema() -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&json_schema())?);
    Ok(())
}
