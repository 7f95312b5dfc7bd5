//! Parquet files: columns read as text (numbers and other scalars are rendered; a text column that
//! is not a string is `text_not_string`), checked row by row. Records are named by their 1-based row.

use std::borrow::Cow;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, SchemaRef};

use super::DocBatch;
use super::file::SourceFile;
use super::rows::{RowBuilder, Value};
use crate::error::{PipelineError, Result};
use crate::spec::SourceSpec;

/// Reads a Parquet file into document batches.
pub struct ParquetReader {
    path: PathBuf,
    inner: Box<dyn Iterator<Item = Result<RecordBatch>> + Send>,
    spec: SourceSpec,
    rows: RowBuilder,
    /// 1-based row number of the next record.
    next_line: usize,
}

impl ParquetReader {
    pub fn open(file: &SourceFile, spec: &SourceSpec, schema: SchemaRef) -> Result<Self> {
        let f = File::open(&file.path).map_err(|e| PipelineError::Io {
            path: file.path.clone(),
            source: e,
        })?;
        let perr = |e: parquet::errors::ParquetError| PipelineError::Parquet {
            path: file.path.clone(),
            message: e.to_string(),
        };
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .map_err(perr)?
            .with_batch_size(spec.batch_rows)
            .build()
            .map_err(perr)?;
        let path = file.path.clone();
        let inner = reader.map(move |b| {
            b.map_err(|e| PipelineError::Parquet {
                path: path.clone(),
                message: e.to_string(),
            })
        });
        Ok(Self::new(file, spec, schema, Box::new(inner), 1))
    }

    fn new(
        file: &SourceFile,
        spec: &SourceSpec,
        schema: SchemaRef,
        inner: Box<dyn Iterator<Item = Result<RecordBatch>> + Send>,
        first: usize,
    ) -> Self {
        Self {
            path: file.path.clone(),
            inner,
            spec: spec.clone(),
            rows: RowBuilder::new(schema, spec),
            next_line: first,
        }
    }

    fn convert(&mut self, batch: &RecordBatch) -> Result<DocBatch> {
        let column = |name: &str| -> Result<Option<(Arc<dyn Array>, bool)>> {
            let Some(c) = batch.column_by_name(name) else {
                return Ok(None);
            };
            let is_text = matches!(
                c.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            );
            Ok(Some((arrow_cast::cast(c, &DataType::Utf8)?, is_text)))
        };
        let id = column(&self.spec.id_field)?;
        let text = column(&self.spec.text_field)?;
        if text.is_none() {
            return Err(PipelineError::Source {
                path: self.path.clone(),
                message: format!("no column `{}` (source.text_field)", self.spec.text_field),
            });
        }
        let meta: Vec<Option<(Arc<dyn Array>, bool)>> = self
            .spec
            .metadata_fields
            .iter()
            .map(|m| column(m))
            .collect::<Result<_>>()?;
        let spec = self.spec.clone();
        for row in 0..batch.num_rows() {
            let get = |c: &Option<(Arc<dyn Array>, bool)>, text_only: bool| match c {
                None => Value::Missing,
                Some((a, _)) if a.is_null(row) => Value::Null,
                Some((a, is_text)) => {
                    let s = a.as_string::<i32>().value(row).to_string();
                    if *is_text || !text_only {
                        Value::Str(Cow::Owned(s))
                    } else {
                        Value::Other(s)
                    }
                }
            };
            let metadata = meta.iter().map(|c| get(c, false)).collect();
            self.rows.push(
                &self.path,
                self.next_line + row,
                &spec,
                get(&id, false),
                get(&text, true),
                metadata,
            )?;
        }
        self.next_line += batch.num_rows();
        self.rows.finish()
    }
}

impl Iterator for ParquetReader {
    type Item = Result<DocBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.inner.next()?;
        Some(batch.and_then(|b| self.convert(&b)))
    }
}
