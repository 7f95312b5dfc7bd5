//! Prompts: the text put before every input, as sentence-transformers' `encode(prompt_name=…)` does
//! (E5: `"query: "` before questions, `"passage: "` before documents).
//!
//! Owns the two roles a text plays (`Role`), how a caller chooses a prompt (`PromptChoice`: the
//! model's prompt for the role, one of its prompts by name, a literal, or none) and the resolved
//! `Prompt` the tokenizer prepends. The prompt is part of the text the model sees: token counts and
//! truncation include it, as in sentence-transformers.

use std::sync::Arc;

use crate::error::{EncoderError, Result};
use crate::model_dir::ModelDir;

/// What a text is to the retriever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A question (search, eval queries, SQL `embed_query`).
    Query,
    /// A stored text (pipelines, SQL `embed`).
    Document,
}

impl Role {
    /// The prompt names sentence-transformers looks for, first found wins (its `encode_query` and
    /// `encode_document`, and the evaluator's `corpus_prompt`).
    pub fn prompt_names(self) -> &'static [&'static str] {
        match self {
            Self::Query => &["query"],
            Self::Document => &["document", "passage", "corpus"],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Document => "document",
        }
    }
}

/// How a caller chooses the prompt for its texts (pipelines: `encoder.prompt`; the CLI: `--prompt`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PromptChoice {
    /// The model's prompt for the role (`Role::prompt_names`), none when it has none.
    #[default]
    Model,
    /// One of the model's prompts by name; a name the model lacks is an error.
    Named(String),
    /// This text, whatever the model says.
    Literal(String),
    /// No prompt.
    None,
}

impl PromptChoice {
    /// The command-line form: `model`, `none`, `text:<literal>`, or a prompt name.
    pub fn parse(s: &str) -> Self {
        match s {
            "model" => Self::Model,
            "none" => Self::None,
            _ => match s.strip_prefix("text:") {
                Some(text) => Self::Literal(text.to_string()),
                None => Self::Named(s.to_string()),
            },
        }
    }
}

/// A resolved prompt: the text prepended to every input of a call (empty = none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Prompt(Option<Arc<str>>);

impl Prompt {
    /// No prompt: texts go to the tokenizer as they are.
    pub fn none() -> Self {
        Self(None)
    }

    pub fn literal(text: &str) -> Self {
        if text.is_empty() {
            Self(None)
        } else {
            Self(Some(text.into()))
        }
    }

    /// The prompt's text, `None` for no prompt.
    pub fn text(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// `text` with the prompt before it.
    pub fn apply(&self, text: &str) -> String {
        match &self.0 {
            Some(p) => {
                let mut s = String::with_capacity(p.len() + text.len());
                s.push_str(p);
                s.push_str(text);
                s
            }
            None => text.to_string(),
        }
    }
}

impl std::fmt::Display for Prompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(p) => write!(f, "{p:?}"),
            None => f.write_str("no prompt"),
        }
    }
}

/// The prompts vectors of a dataset were made with: `document` before every stored text, and the
/// `query` prompt a query must be embedded with to be compared with them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RolePrompts {
    pub document: Prompt,
    pub query: Prompt,
}

impl std::fmt::Display for RolePrompts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "documents {}, queries {}", self.document, self.query)
    }
}

impl ModelDir {
    /// The prompt sentence-transformers' `encode` applies when the caller names none: the one
    /// `default_prompt_name` names, else none.
    pub fn default_prompt(&self) -> Prompt {
        self.prompts
            .default_prompt_name
            .as_deref()
            .and_then(|n| self.prompts.get(n))
            .map_or_else(Prompt::none, Prompt::literal)
    }

    /// The document prompt chosen by `document` and the model's query prompt.
    pub fn role_prompts(&self, document: &PromptChoice) -> Result<RolePrompts> {
        Ok(RolePrompts {
            document: self.prompt_for(Role::Document, document)?,
            query: self.query_prompt()?,
        })
    }

    /// The prompt the model puts before a question (its `query` prompt, or none).
    pub fn query_prompt(&self) -> Result<Prompt> {
        self.prompt_for(Role::Query, &PromptChoice::Model)
    }

    /// The prompt for `role` chosen by `choice`. A name the model lacks is an error listing its
    /// prompts; a prompt with a model whose pooling leaves prompt tokens out (`include_prompt:
    /// false`, as Instructor models) is refused, since lexembed pools every token.
    pub fn prompt_for(&self, role: Role, choice: &PromptChoice) -> Result<Prompt> {
        let prompt = match choice {
            PromptChoice::Model => role
                .prompt_names()
                .iter()
                .find_map(|n| self.prompts.get(n))
                .map_or_else(Prompt::none, Prompt::literal),
            PromptChoice::Named(name) => match self.prompts.get(name) {
                Some(text) => Prompt::literal(text),
                None => {
                    return Err(EncoderError::UnknownPrompt {
                        model: self.model_id.clone(),
                        name: name.clone(),
                        known: self.prompts.prompts.keys().cloned().collect(),
                    });
                }
            },
            PromptChoice::Literal(text) => Prompt::literal(text),
            PromptChoice::None => Prompt::none(),
        };
        if prompt.text().is_some() && !self.include_prompt {
            return Err(EncoderError::PromptExcludedFromPooling {
                model: self.model_id.clone(),
            });
        }
        Ok(prompt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_forms_read_as_choices() {
        assert_eq!(PromptChoice::parse("none"), PromptChoice::None);
        assert_eq!(PromptChoice::parse("model"), PromptChoice::Model);
        assert_eq!(
            PromptChoice::parse("query"),
            PromptChoice::Named("query".into())
        );
        assert_eq!(
            PromptChoice::parse("text:query: "),
            PromptChoice::Literal("query: ".into())
        );
    }

    #[test]
    fn a_prompt_goes_before_the_text() {
        assert_eq!(Prompt::literal("query: ").apply("plazo"), "query: plazo");
        assert_eq!(Prompt::none().apply("plazo"), "plazo");
        assert_eq!(Prompt::literal(""), Prompt::none());
    }
}
