//! The plan of a search table function (`vector_search`, `hybrid_search`): a [`SearchTable`] whose
//! schema comes from the dataset when the query is planned, and whose scan is a [`SearchExec`] that
//! runs the search — embedding the question, reading the index — when the plan executes. Planning
//! (and `EXPLAIN`) runs no search and embeds nothing; `EXPLAIN` shows the node and what it searches.

use std::fmt;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Result, exec_err};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::future::BoxFuture;

/// A search a table function planned, run when its plan executes. The plan's nodes show it (in
/// `EXPLAIN` and in `Debug`) by `node_name` and `describe`.
pub trait Search: Send + Sync + 'static {
    /// The plan node's name in `EXPLAIN` (`VectorSearchExec`).
    fn node_name(&self) -> &'static str;
    /// What is searched, how, for `EXPLAIN` (`table=docs column=emb_256 k=10 mode=index`).
    fn describe(&self) -> String;
    /// Runs the search. The rows may carry their columns in any order and more columns than the
    /// planned schema; every planned column must be there by name.
    fn run(&self) -> BoxFuture<'static, Result<RecordBatch>>;
}

/// The table a search table function returns: the planned schema and the search, not its rows.
pub struct SearchTable {
    schema: SchemaRef,
    search: Arc<dyn Search>,
}

impl SearchTable {
    pub fn new(schema: SchemaRef, search: impl Search) -> Self {
        Self {
            schema,
            search: Arc::new(search),
        }
    }
}

impl fmt::Debug for SearchTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SearchTable({})", self.search.describe())
    }
}

#[async_trait]
impl TableProvider for SearchTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        Ok(Arc::new(SearchExec::new(schema, self.search.clone())))
    }
}

/// Runs a [`Search`] in one partition and yields its rows in the planned (projected) schema.
pub struct SearchExec {
    schema: SchemaRef,
    search: Arc<dyn Search>,
    properties: Arc<PlanProperties>,
}

impl SearchExec {
    fn new(schema: SchemaRef, search: Arc<dyn Search>) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Self {
            schema,
            search,
            properties: Arc::new(properties),
        }
    }
}

impl fmt::Debug for SearchExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.search.node_name(), self.search.describe())
    }
}

impl DisplayAs for SearchExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "{}: {}", self.search.node_name(), self.search.describe())
            }
            DisplayFormatType::TreeRender => write!(f, "{}", self.search.describe()),
        }
    }
}

impl ExecutionPlan for SearchExec {
    fn name(&self) -> &str {
        self.search.node_name()
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return exec_err!("{} has one partition, asked for {partition}", self.name());
        }
        let schema = self.schema.clone();
        let search = self.search.run();
        let rows = futures::stream::once(async move { in_schema(&search.await?, &schema) });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            rows,
        )))
    }
}

/// `batch`'s columns named by `schema`, in its order.
fn in_schema(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) => Ok(c.clone()),
            None => exec_err!("the search returned no column {}", f.name()),
        })
        .collect::<Result<Vec<_>>>()?;
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &options,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float32Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use datafusion::prelude::SessionContext;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A search that counts its runs and returns two rows, its columns in another order.
    struct Counted(Arc<AtomicUsize>);

    impl Search for Counted {
        fn node_name(&self) -> &'static str {
            "CountedSearchExec"
        }
        fn describe(&self) -> String {
            "k=2".into()
        }
        fn run(&self) -> BoxFuture<'static, Result<RecordBatch>> {
            let runs = self.0.clone();
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(RecordBatch::try_from_iter([
                    (
                        "_score",
                        Arc::new(Float32Array::from(vec![0.9, 0.5])) as arrow_array::ArrayRef,
                    ),
                    ("id", Arc::new(StringArray::from(vec!["a", "b"]))),
                ])?)
            })
        }
    }

    #[tokio::test]
    async fn planning_runs_no_search_and_execution_runs_it_once() {
        let runs = Arc::new(AtomicUsize::new(0));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("_score", DataType::Float32, false),
        ]));
        let ctx = SessionContext::new();
        ctx.register_table(
            "found",
            Arc::new(SearchTable::new(schema, Counted(runs.clone()))),
        )
        .unwrap();
        let df = ctx.sql("EXPLAIN SELECT id FROM found").await.unwrap();
        let plan =
            datafusion::arrow::util::pretty::pretty_format_batches(&df.collect().await.unwrap())
                .unwrap()
                .to_string();
        assert!(plan.contains("CountedSearchExec: k=2"), "{plan}");
        assert_eq!(runs.load(Ordering::SeqCst), 0, "EXPLAIN ran the search");
        let df = ctx
            .sql("SELECT id FROM found WHERE _score > 0.6")
            .await
            .unwrap();
        df.clone().create_physical_plan().await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 0, "planning ran the search");
        let rows = df.collect().await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let ids: Vec<String> = rows
            .iter()
            .flat_map(|b| {
                let ids = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
                ids.iter().flatten().map(String::from).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(ids, ["a"]);
    }
}

/// A Lance table of unit vectors and a session with lexembed's functions over it, for the search
/// functions' tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::sync::Arc;

    use arrow_array::{FixedSizeListArray, Float32Array, RecordBatch, RecordBatchIterator};
    use arrow_array::{StringArray, cast::AsArray};
    use datafusion::prelude::SessionContext;
    use lexembed_encoder::{Dim, Encoder, EncoderOptions};
    use lexembed_lance::{CommitRecord, DatasetLocation, SinkMode};

    use crate::{BatchPolicy, register_functions, register_lance_table};

    pub const DIM: usize = 16;

    pub fn encoder() -> Arc<Encoder> {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../encoder/tests/fixtures/tiny-xlmr");
        Arc::new(Encoder::open(dir, &EncoderOptions::default()).unwrap())
    }

    /// Row `id` holds the unit vector along axis `axis`, and its text.
    pub async fn append(loc: &DatasetLocation, rows: &[(&str, usize, &str)], mode: SinkMode) {
        let model = encoder().model().model_id.clone();
        let by =
            lexembed_lance::schema::WrittenBy::new(&model, &[Dim(DIM as u32)], Default::default());
        let schema = lexembed_lance::schema::embedded_dataset(&by, &[]).unwrap();
        let mut values = vec![0f32; rows.len() * DIM];
        for (r, &(_, axis, _)) in rows.iter().enumerate() {
            values[r * DIM + axis] = 1.0;
        }
        let vectors = FixedSizeListArray::try_new(
            lexembed_encoder::matryoshka::item_field(),
            DIM as i32,
            Arc::new(Float32Array::from(values)),
            None,
        )
        .unwrap();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
                Arc::new(vectors),
            ],
        )
        .unwrap();
        let reader = RecordBatchIterator::new(vec![Ok(batch)], schema);
        loc.commit(mode, reader, &CommitRecord::default())
            .await
            .unwrap();
    }

    /// A session with lexembed's functions and `loc` registered as `docs`.
    pub async fn session(loc: &DatasetLocation) -> SessionContext {
        let ctx = SessionContext::new();
        let funcs = register_functions(&ctx, encoder(), BatchPolicy::default()).unwrap();
        register_lance_table(&ctx, &funcs, "docs", loc)
            .await
            .unwrap();
        ctx
    }

    /// The unit vector along `axis` as a SQL array literal.
    pub fn axis_literal(axis: usize) -> String {
        let v: Vec<&str> = (0..DIM)
            .map(|i| if i == axis { "1.0" } else { "0.0" })
            .collect();
        format!("[{}]", v.join(", "))
    }

    /// The plan `EXPLAIN` prints for `sql`.
    pub async fn explain(ctx: &SessionContext, sql: &str) -> String {
        let rows = ctx
            .sql(&format!("EXPLAIN {sql}"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        datafusion::arrow::util::pretty::pretty_format_batches(&rows)
            .unwrap()
            .to_string()
    }

    /// The first column's strings, in order.
    pub fn first_strings(rows: &[RecordBatch]) -> Vec<String> {
        rows.iter()
            .flat_map(|b| {
                let c = b.column(0).as_string::<i32>();
                c.iter().flatten().map(String::from).collect::<Vec<_>>()
            })
            .collect()
    }
}
