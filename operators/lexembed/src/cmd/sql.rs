//! `lexembed sql`: statements (argument or file, `;`-separated) or an interactive prompt, over Lance
//! datasets registered as tables, with `embed()` and the vector functions; output as a table, CSV or
//! JSON lines. `COPY (SELECT …) TO 'x.lance'` writes a new Lance dataset.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use lexembed_lance::DatasetLocation;
use lexembed_sql::{
    BatchPolicy, copy_to_lance, is_file_table, parse_lance_copy, register_file_table,
    register_functions, register_lance_table,
};

use lexembed_encoder::ModelDir;
use lexembed_encoder::cli::EncoderArgs;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Args, Debug)]
pub struct SqlArgs {
    /// The query. Without it (and without --file), statements are read from stdin, one per `;`.
    pub query: Option<String>,
    /// Read the query from a file.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Register a table: name=PATH (repeatable). A `.parquet`, `.csv` (with a header) or `.jsonl`
    /// file by its extension; anything else is a Lance dataset (local or `s3://`), the one kind
    /// `vector_search` takes.
    #[arg(long = "table", value_parser = parse_table)]
    pub tables: Vec<(String, String)>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

fn parse_table(s: &str) -> Result<(String, String), String> {
    let (n, p) = s.split_once('=').ok_or("expected name=PATH")?;
    Ok((n.to_string(), p.to_string()))
}

pub fn run(args: SqlArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(session(args))
}

async fn session(args: SqlArgs) -> anyhow::Result<()> {
    let ctx = SessionContext::new();
    let encoder = Arc::new(args.encoder.open(&[])?);
    let funcs = register_functions(&ctx, encoder, BatchPolicy::whole_requests())?;
    for (name, path) in &args.tables {
        let registered = if is_file_table(path) {
            register_file_table(&ctx, name, path).await
        } else {
            register_lance_table(&ctx, &funcs, name, &DatasetLocation::new(path)).await
        };
        registered.with_context(|| format!("registering table {name}"))?;
    }
    let query = match (&args.query, &args.file) {
        (Some(q), _) => Some(q.clone()),
        (None, Some(f)) => {
            Some(std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?)
        }
        (None, None) => None,
    };
    let model = funcs.batcher.encoder().model().clone();
    if let Some(q) = query {
        for statement in split_statements(&q)? {
            execute(&ctx, &statement, args.format, &model).await?;
        }
        return Ok(());
    }
    if std::io::stdin().is_terminal() {
        return prompt(&ctx, args.format, &model).await;
    }
    // Statements from stdin end with `;`; an error is printed and the session goes on.
    let mut statement = String::new();
    for line in std::io::stdin().lock().lines() {
        statement.push_str(&line?);
        statement.push('\n');
        if statement.trim_end().ends_with(';') {
            if let Err(e) = execute(&ctx, &statement, args.format, &model).await {
                eprintln!("error: {e:#}");
            }
            statement.clear();
        }
    }
    if !statement.trim().is_empty() {
        execute(&ctx, &statement, args.format, &model).await?;
    }
    Ok(())
}

async fn execute(
    ctx: &SessionContext,
    sql: &str,
    format: Format,
    model: &ModelDir,
) -> anyhow::Result<()> {
    if let Some((query, path)) = parse_lance_copy(sql) {
        let rows = copy_to_lance(ctx, &query, &DatasetLocation::new(&path), model).await?;
        eprintln!("{rows} rows → {path}");
        return Ok(());
    }
    let batches = ctx.sql(sql).await?.collect().await?;
    print(&batches, format)
}

/// The interactive prompt: line editing, history kept in `$LEXEMBED_HOME/sql_history` across
/// sessions (less statements that may hold credentials), statements end with `;`, an error is printed and the session goes on, Ctrl-C drops the
/// statement being typed, Ctrl-D leaves.
async fn prompt(ctx: &SessionContext, format: Format, model: &ModelDir) -> anyhow::Result<()> {
    use rustyline::error::ReadlineError;
    let mut editor = rustyline::DefaultEditor::new()?;
    let history = lexembed_encoder::runtime::lexembed_home().join("sql_history");
    let _ = editor.load_history(&history); // none yet on a first session
    let mut statement = String::new();
    loop {
        let p = if statement.is_empty() {
            "lexembed> "
        } else {
            "      -> "
        };
        match editor.readline(p) {
            Ok(line) => {
                statement.push_str(&line);
                statement.push('\n');
                if statement.trim_end().ends_with(';') {
                    if may_hold_credentials(&statement) {
                        eprintln!("(not kept in the history: it may hold credentials)");
                    } else {
                        let _ = editor.add_history_entry(statement.trim());
                        let _ = editor.save_history(&history);
                    }
                    if let Err(e) = execute(ctx, &statement, format, model).await {
                        eprintln!("error: {e:#}");
                    }
                    statement.clear();
                }
            }
            Err(ReadlineError::Interrupted) => statement.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if !statement.trim().is_empty() {
        execute(ctx, &statement, format, model).await?;
    }
    Ok(())
}

/// Whether a statement may carry credentials (`OPTIONS (…)` of an external table, keys, passwords,
/// tokens): such statements stay out of the history file.
fn may_hold_credentials(statement: &str) -> bool {
    const MARKERS: [&str; 7] = [
        "options",
        "secret",
        "password",
        "access_key",
        "token",
        "credential",
        "session_key",
    ];
    let lower = statement.to_lowercase();
    MARKERS.iter().any(|m| lower.contains(m))
}

/// Statements of a script, split by DataFusion's SQL tokenizer at each `;` that is a token (not one
/// inside quotes or comments: `-- don't forget` is a comment, not an open quote). Each statement is
/// its text as written; empty ones are dropped.
fn split_statements(sql: &str) -> anyhow::Result<Vec<String>> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer};
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| anyhow::anyhow!("reading the SQL script: {e}"))?;
    let lines: Vec<&str> = sql.split_inclusive('\n').collect();
    let mut line_starts = Vec::with_capacity(lines.len());
    let mut at = 0;
    for l in &lines {
        line_starts.push(at);
        at += l.len();
    }
    // Locations are 1-based lines and columns counted in characters.
    let offset = |loc: Location| -> usize {
        let line = (loc.line as usize).saturating_sub(1);
        let (Some(&start), Some(text)) = (line_starts.get(line), lines.get(line)) else {
            return sql.len();
        };
        let column = (loc.column as usize).saturating_sub(1);
        start
            + text
                .char_indices()
                .nth(column)
                .map_or(text.len(), |(i, _)| i)
    };
    let (mut out, mut from) = (Vec::new(), 0);
    for t in tokens.iter().filter(|t| t.token == Token::SemiColon) {
        let at = offset(t.span.start);
        out.push(sql[from..at].trim().to_string());
        from = offset(t.span.end);
    }
    out.push(sql[from.min(sql.len())..].trim().to_string());
    out.retain(|s| !s.is_empty());
    Ok(out)
}

fn print(batches: &[RecordBatch], format: Format) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Table => writeln!(
            out,
            "{}",
            datafusion::arrow::util::pretty::pretty_format_batches(batches)?
        )?,
        Format::Csv => {
            let mut w = datafusion::arrow::csv::Writer::new(&mut out);
            for b in batches {
                w.write(b)?;
            }
        }
        Format::Json => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A quote inside a comment, a `;` inside a comment or a literal: the hand-written splitter read
    /// `-- don't` as an open quote and ran the rest of the script as one statement.
    #[test]
    fn scripts_split_at_semicolons_outside_quotes_and_comments() {
        let script =
            "-- don't forget the limit\nSELECT 'it''s; fine' AS a; /* ; */ SELECT 2 AS b;\n\n";
        let statements = split_statements(script).unwrap();
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert_eq!(
            statements[0],
            "-- don't forget the limit\nSELECT 'it''s; fine' AS a"
        );
        assert_eq!(statements[1], "/* ; */ SELECT 2 AS b");
        assert!(split_statements("SELECT 'open").is_err());
    }

    #[test]
    fn statements_with_credentials_stay_out_of_the_history() {
        let create = "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 's3://b/t' \
                      OPTIONS ('aws.secret_access_key' 'hunter2');";
        assert!(may_hold_credentials(create));
        assert!(may_hold_credentials("SET s3.Session_Token = 'x';"));
        assert!(!may_hold_credentials(
            "SELECT id FROM vector_search('docs', 'emb_64', embed('plazo', 64), 5);"
        ));
    }
}
