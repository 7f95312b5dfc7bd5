//! What a file or SQL run reports through the `metrics` facade when it ends, labelled by pipeline
//! (and bad records by kind): the same names as the Kafka operator's where they mean the same thing,
//! so one dashboard reads both. The binary's recorder writes them out (a textfile for CronJobs).

use metrics::{counter, describe_counter, describe_histogram, histogram};

use crate::run::RunSummary;

/// Records a finished run's counts.
pub fn record(summary: &RunSummary) {
    describe();
    let pipeline = summary.pipeline.clone();
    let count = |name: &'static str, n: usize| {
        counter!(name, "pipeline" => pipeline.clone()).increment(n as u64);
    };
    count("lexembed_source_files_total", summary.files);
    count(
        "lexembed_source_files_already_committed_total",
        summary.files_already_committed,
    );
    count("lexembed_rows_read_total", summary.rows_read);
    count("lexembed_rows_embedded_total", summary.rows_embedded);
    count("lexembed_rows_written_total", summary.rows_written);
    count(
        "lexembed_lance_commits_total",
        usize::from(summary.version.is_some()),
    );
    for (kind, &n) in &summary.skipped {
        counter!("lexembed_bad_records_total", "pipeline" => pipeline.clone(), "kind" => kind.name())
            .increment(n as u64);
    }
    histogram!("lexembed_encoder_seconds", "pipeline" => pipeline.clone())
        .record(summary.encoder_seconds);
}

fn describe() {
    describe_counter!(
        "lexembed_source_files_total",
        "Source files a run read (file sources)."
    );
    describe_counter!(
        "lexembed_source_files_already_committed_total",
        "Source files skipped because an earlier commit holds them (resume)."
    );
    describe_counter!("lexembed_rows_read_total", "Records read from the source.");
    describe_counter!("lexembed_rows_embedded_total", "Rows embedded.");
    describe_counter!("lexembed_rows_written_total", "Rows committed to Lance.");
    describe_counter!("lexembed_lance_commits_total", "Lance commits.");
    describe_counter!(
        "lexembed_bad_records_total",
        "Bad records skipped, by refusal kind (on_bad_record: skip)."
    );
    describe_histogram!(
        "lexembed_encoder_seconds",
        "Time inside the encoder (per Kafka batch; per run for file and SQL sources)."
    );
}
