//! One module per subcommand.

pub mod bench;
pub mod dataset;
pub mod demo;
pub mod embed;
pub mod eval;
pub mod model;
pub mod produce;
pub mod run;
pub mod sql;
pub mod validate;
