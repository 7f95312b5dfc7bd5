//! Evaluation history: every run appends one row per (dim, metric) to a Lance table with the
//! `schemas/eval_results.json` columns, so trends and regressions can be read back.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMicrosecondType, UInt32Type, UInt64Type};
use arrow_array::{
    ArrayRef, Float64Array, RecordBatch, RecordBatchIterator, StringArray,
    TimestampMicrosecondArray, UInt32Array, UInt64Array,
};
use futures::TryStreamExt;
use lexembed_lance::{CommitRecord, DatasetLocation, SinkMode, StoreError};

use crate::error::Result;
use crate::evaluate::EvalResult;

/// One stored metric value.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub run_time_us: i64,
    pub model_id: String,
    pub dataset_uri: String,
    pub dataset_version: u64,
    pub qa_digest: String,
    pub dim: u32,
    /// As stored: the evaluator's name (`cosine_ndcg@10`).
    pub metric: String,
    pub value: f64,
}

/// What identifies a run besides its metrics.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub run_time_us: i64,
    pub model_id: String,
    pub dataset_uri: String,
    pub dataset_version: u64,
    pub qa_digest: String,
}

pub fn rows(info: &RunInfo, result: &EvalResult) -> Vec<HistoryRow> {
    result
        .metrics
        .iter()
        .map(|(key, &value)| HistoryRow {
            run_time_us: info.run_time_us,
            model_id: info.model_id.clone(),
            dataset_uri: info.dataset_uri.clone(),
            dataset_version: info.dataset_version,
            qa_digest: info.qa_digest.clone(),
            dim: key.dim,
            metric: key.metric.to_string(),
            value,
        })
        .collect()
}

/// Appends a run's rows (one commit).
pub async fn append(location: &DatasetLocation, rows: &[HistoryRow]) -> Result<u64> {
    let schema = lexembed_lance::schema::eval_results()?;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.run_time_us))
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.model_id.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.dataset_uri.as_str()),
        )),
        Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|r| r.dataset_version),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.qa_digest.as_str()),
        )),
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.dim))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.metric.as_str()),
        )),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.value))),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols)?;
    let reader = RecordBatchIterator::new(vec![Ok(batch)], schema);
    let record = CommitRecord {
        job: Some("eval".into()),
        ..CommitRecord::default()
    };
    Ok(location
        .commit(SinkMode::Append, reader, &record)
        .await?
        .version)
}

/// Every stored row, oldest run first.
pub async fn read(location: &DatasetLocation) -> Result<Vec<HistoryRow>> {
    let Some(ds) = location.open_if_exists().await? else {
        return Ok(Vec::new());
    };
    let err = |e| StoreError::Lance {
        uri: location.uri.clone(),
        source: e,
    };
    let batches: Vec<RecordBatch> = ds
        .scan()
        .try_into_stream()
        .await
        .map_err(err)?
        .try_collect()
        .await
        .map_err(err)?;
    let mut out = Vec::new();
    for b in &batches {
        let s = |i: usize| b.column(i).as_string::<i32>().clone();
        let (t, model, uri, ver, dig, dim, metric, val) = (
            b.column(0)
                .as_primitive::<TimestampMicrosecondType>()
                .clone(),
            s(1),
            s(2),
            b.column(3).as_primitive::<UInt64Type>().clone(),
            s(4),
            b.column(5).as_primitive::<UInt32Type>().clone(),
            s(6),
            b.column(7).as_primitive::<Float64Type>().clone(),
        );
        for i in 0..b.num_rows() {
            out.push(HistoryRow {
                run_time_us: t.value(i),
                model_id: model.value(i).to_string(),
                dataset_uri: uri.value(i).to_string(),
                dataset_version: ver.value(i),
                qa_digest: dig.value(i).to_string(),
                dim: dim.value(i),
                metric: metric.value(i).to_string(),
                value: val.value(i),
            });
        }
    }
    out.sort_by_key(|r| r.run_time_us);
    Ok(out)
}
