//! `embed(text)` and `embed(text, dim)`: the Matryoshka embedding of each text as
//! `FixedSizeList<Float32, dim>` (full width when `dim` is omitted); null in, null out.
//! `embed_query(text [, dim])` is the same with the model's query prompt before each text (E5:
//! `"query: "`), where `embed` puts its document prompt (`"passage: "`), as pipelines do: documents
//! stored with `embed`, questions asked with `embed_query`. A model without prompts gives both the
//! same vectors.
//!
//! An async UDF: DataFusion hands it record batches of `ideal_batch_size` rows from every partition
//! concurrently, and each call waits on the model's shared batcher, which coalesces them into large
//! encoder calls. A literal text is embedded once per call and its vector repeated for the rows, so
//! `cosine_distance(emb_64, embed('plazo', 64))` runs the model once per batch, not once per row. Planning errors: a non-literal or unsupported dim (listing the allowed ones), a non-string
//! text.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, Field, FieldRef};
use async_trait::async_trait;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::scalar_doc_sections::DOC_SECTION_OTHER;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use lexembed_encoder::text_input::{is_text_type, text_rows};
use lexembed_encoder::{Dim, embedding_type, matryoshka_arrays};

use datafusion::error::DataFusionError;
use lexembed_encoder::{Prompt, PromptChoice, Role, SharedBatcher};

/// Rows DataFusion should hand one call: enough for good encoder batches on any provider.
pub const IDEAL_BATCH_SIZE: usize = 256;

#[derive(Debug)]
pub struct EmbedFunc {
    signature: Signature,
    batcher: BatcherRef,
    role: Role,
    prompt: Prompt,
}

/// The batcher, compared by model id so the UDF is `Eq`/`Hash` as DataFusion requires.
#[derive(Clone)]
struct BatcherRef(SharedBatcher);

impl std::fmt::Debug for BatcherRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedBatcher({})", self.0.encoder().model().model_id)
    }
}

impl PartialEq for EmbedFunc {
    fn eq(&self, other: &Self) -> bool {
        self.batcher.0.encoder().model().model_id == other.batcher.0.encoder().model().model_id
            && self.role == other.role
            && self.prompt == other.prompt
    }
}
impl Eq for EmbedFunc {}
impl Hash for EmbedFunc {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.batcher.0.encoder().model().model_id.hash(state);
        self.role.hash(state);
        self.prompt.hash(state);
    }
}

/// The SQL name of the function embedding texts in `role`.
pub fn function_name(role: Role) -> &'static str {
    match role {
        Role::Document => "embed",
        Role::Query => "embed_query",
    }
}

impl EmbedFunc {
    /// `embed` (documents) or `embed_query` (queries), with the model's prompt for that role.
    pub fn new(batcher: SharedBatcher, role: Role) -> Result<Self> {
        let prompt = batcher
            .encoder()
            .prompt(role, &PromptChoice::Model)
            .map_err(|e| DataFusionError::Configuration(e.to_string()))?;
        Ok(Self {
            signature: Signature::variadic_any(Volatility::Volatile),
            batcher: BatcherRef(batcher),
            role,
            prompt,
        })
    }

    /// Registers as an async UDF.
    pub fn udf(batcher: SharedBatcher, role: Role) -> Result<ScalarUDF> {
        Ok(AsyncScalarUDF::new(Arc::new(Self::new(batcher, role)?)).into_scalar_udf())
    }

    fn allowed(&self) -> Vec<u32> {
        self.batcher
            .0
            .encoder()
            .dims()
            .as_slice()
            .iter()
            .map(|d| d.0)
            .collect()
    }

    /// The dim a call asks for: the literal second argument, else the full width.
    fn dim_of(&self, literal: Option<&ScalarValue>, given: bool) -> Result<Dim> {
        let dims = self.batcher.0.encoder().dims();
        if !given {
            return Ok(dims.full());
        }
        let value = match literal {
            Some(ScalarValue::Int64(Some(v))) => *v,
            Some(ScalarValue::Int32(Some(v))) => i64::from(*v),
            Some(ScalarValue::UInt64(Some(v))) => *v as i64,
            Some(ScalarValue::UInt32(Some(v))) => i64::from(*v),
            _ => {
                return plan_err!(
                    "embed(text, dim): dim must be an integer literal, one of {:?}",
                    self.allowed()
                );
            }
        };
        match u32::try_from(value).ok().and_then(|d| dims.require(d).ok()) {
            Some(d) => Ok(d),
            None => plan_err!(
                "embed(text, dim): dim {value} is not one of the model's dims {:?}",
                self.allowed()
            ),
        }
    }
}

impl ScalarUDFImpl for EmbedFunc {
    fn name(&self) -> &str {
        function_name(self.role)
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(embedding_type(self.batcher.0.encoder().dims().full()))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        match args.arg_fields.len() {
            1 | 2 => {}
            n => {
                let name = self.name();
                return plan_err!("{name} takes (text) or (text, dim), got {n} arguments");
            }
        }
        let text_type = args.arg_fields[0].data_type();
        if !is_text_type(text_type) && !matches!(text_type, DataType::Null) {
            return plan_err!("embed(text, dim): text must be a string, got {text_type}");
        }
        let dim = self.dim_of(
            args.scalar_arguments.get(1).copied().flatten(),
            args.arg_fields.len() == 2,
        )?;
        Ok(Arc::new(Field::new(self.name(), embedding_type(dim), true)))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        exec_err!("embed is async: it runs through DataFusion's async UDF execution")
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(match self.role {
            Role::Document => &EMBED_DOC,
            Role::Query => &EMBED_QUERY_DOC,
        })
    }
}

static EMBED_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    doc(
        "embed",
        "The Matryoshka embedding of each text with the model's document prompt (E5: \"passage: \"), \
         as pipelines store documents: FixedSizeList<Float32, dim>, L2-normalised at its dim; null \
         for a null text. Errors: a dim that is not a literal or not one of the model's dims (the \
         error lists them), a text that is not a string.",
        "SELECT id, embed(text, 256) AS emb_256 FROM docs",
    )
});

static EMBED_QUERY_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    doc(
        "embed_query",
        "embed() with the model's query prompt (E5: \"query: \"): how questions are asked of a \
         dataset of embed()ded documents. Same result type and errors as embed.",
        "SELECT id FROM vector_search('docs', 'emb_256', embed_query('plazo de recurso', 256), 5)",
    )
});

fn doc(name: &str, description: &str, example: &str) -> Documentation {
    Documentation::builder(
        DOC_SECTION_OTHER,
        description.to_string(),
        format!("{name}(text [, dim])"),
    )
    .with_argument("text", "A string column or literal.")
    .with_argument(
        "dim",
        "An integer literal, one of the model's Matryoshka dims (default: the full width).",
    )
    .with_sql_example(example.to_string())
    .build()
}

#[async_trait]
impl AsyncScalarUDFImpl for EmbedFunc {
    fn ideal_batch_size(&self) -> Option<usize> {
        Some(IDEAL_BATCH_SIZE)
    }

    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let dim = match args.return_field.data_type() {
            DataType::FixedSizeList(_, d) => Dim(*d as u32),
            other => return exec_err!("embed: unexpected return type {other}"),
        };
        match &args.args[0] {
            // A literal (`embed('plazo', 64)` beside a column): one text, embedded once, then its
            // vector repeated for the batch's rows (the async UDF's output is a column), instead of
            // the text copied to every row and embedded again for each.
            ColumnarValue::Scalar(text) => {
                let one = self.embed_array(text.to_array_of_size(1)?, dim).await?;
                let vector = ScalarValue::try_from_array(&one, 0)?;
                Ok(ColumnarValue::Array(
                    vector.to_array_of_size(args.number_rows)?,
                ))
            }
            ColumnarValue::Array(texts) => Ok(ColumnarValue::Array(
                self.embed_array(texts.clone(), dim).await?,
            )),
        }
    }
}

impl EmbedFunc {
    /// Every text of `texts` at `dim` (null in, null out), through the shared batcher.
    async fn embed_array(&self, texts: ArrayRef, dim: Dim) -> Result<ArrayRef> {
        let rows = text_rows(texts.as_ref())
            .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))?;
        let present: Vec<String> = rows.iter().flatten().map(|s| s.to_string()).collect();
        let n_present = present.len();
        let emb = self
            .batcher
            .0
            .embed(present, &self.prompt)
            .await
            .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))?
            .embeddings;
        let full = emb.dim;
        let mut values = vec![0f32; rows.len() * full];
        let mut next = 0;
        for (i, r) in rows.iter().enumerate() {
            if r.is_some() {
                values[i * full..(i + 1) * full].copy_from_slice(emb.row(next));
                next += 1;
            }
        }
        debug_assert_eq!(next, n_present);
        let arrays = matryoshka_arrays(&values, full, &[dim], texts.logical_nulls().as_ref())
            .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))?;
        let out: ArrayRef =
            Arc::new(arrays.into_iter().next().ok_or_else(|| {
                datafusion::error::DataFusionError::Execution("no output".into())
            })?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float32Type;
    use datafusion::logical_expr::ScalarUDFImpl;
    use datafusion::prelude::SessionContext;
    use lexembed_encoder::{BatchPolicy, Dim, Prompt, Role, SharedBatcher};

    use super::EmbedFunc;
    use crate::search_exec::fixtures::encoder;

    fn batcher() -> SharedBatcher {
        SharedBatcher::start(encoder(), BatchPolicy::default())
    }

    fn session() -> SessionContext {
        let ctx = SessionContext::new();
        ctx.register_udf(EmbedFunc::udf(batcher(), Role::Document).unwrap());
        ctx
    }

    #[tokio::test]
    async fn embed_is_the_encoders_vector_at_the_dim_and_null_stays_null() {
        let ctx = session();
        let rows = ctx
            .sql("SELECT embed(t, 16) FROM (VALUES ('plazo de recurso'), (NULL)) AS v(t)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let col = rows[0].column(0).as_fixed_size_list();
        assert_eq!((col.len(), col.value_length()), (2, 16));
        assert!(col.is_valid(0) && col.is_null(1), "null in, null out");
        let got = col.value(0);
        let got = got.as_primitive::<Float32Type>().values();
        let want = encoder()
            .encode(&["plazo de recurso"], &Prompt::none())
            .unwrap()
            .prefix(0, Dim(16));
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-5, "max abs difference {err}");
        // DataFusion's async UDF wrapper does not pass documentation on: asked of the function.
        let f = EmbedFunc::new(batcher(), Role::Query).unwrap();
        let doc = f.documentation().unwrap();
        assert!(doc.syntax_example.contains("embed_query(text [, dim])"));
    }

    #[tokio::test]
    async fn a_dim_the_model_does_not_serve_is_refused_listing_its_dims() {
        let ctx = session();
        let err = ctx
            .sql("SELECT embed('plazo', 17)")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dim 17 is not one of the model's dims"),
            "{err}"
        );
    }
}
