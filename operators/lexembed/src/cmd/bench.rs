//! `lexembed bench …`: forwards to the `lexembed-bench` binary (operators/bench), which sits next to
//! this one in a cargo build. The benchmarks live there so that this binary links none of their
//! dependencies; this forwarder adds none either.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use clap::Args;

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct BenchArgs {
    /// The benchmark and its flags, e.g. `encode --limit 1000` (`lexembed bench --help` lists them).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Runs `lexembed-bench ARGS…` and exits as it does.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let bin = bench_binary();
    let status = Command::new(&bin)
        .args(&args.args)
        .status()
        .with_context(|| {
            format!(
                "running {} (build it with `cargo build -p lexembed-bench`)",
                bin.display()
            )
        })?;
    std::process::exit(status.code().unwrap_or(1));
}

/// `lexembed-bench` beside the running executable, else the one on PATH.
fn bench_binary() -> PathBuf {
    let name = format!("lexembed-bench{}", std::env::consts::EXE_SUFFIX);
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(&name)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}
