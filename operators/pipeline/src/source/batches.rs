//! Record-at-a-time readers (JSON, CSV) as iterators of document batches: a reader fills its row
//! builder until a batch is full or its input ends; `Batches` turns that into `DocBatch`es and stops
//! at the first error.

use super::DocBatch;
use super::rows::RowBuilder;
use crate::error::Result;

/// A reader that adds records to its row builder one at a time.
pub trait FillBatch {
    /// Reads records until `batch_rows` are in the builder; `Ok(true)` once the input has ended.
    fn fill_batch(&mut self) -> Result<bool>;

    fn rows(&mut self) -> &mut RowBuilder;
}

/// The batches of a `FillBatch` reader.
pub struct Batches<R> {
    reader: R,
    done: bool,
}

impl<R: FillBatch> Batches<R> {
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            done: false,
        }
    }
}

impl<R: FillBatch> Iterator for Batches<R> {
    type Item = Result<DocBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.reader.fill_batch() {
            Ok(ended) => self.done = ended,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        }
        match self.reader.rows().finish() {
            Ok(docs) if !docs.is_empty() => Some(Ok(docs)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        }
    }
}
