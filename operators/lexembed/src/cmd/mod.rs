//! One module per subcommand, and `metrics`: the process's metrics recorder and textfile.

pub mod bench;
pub mod dataset;
pub mod demo;
pub mod embed;
pub mod eval;
pub mod metrics;
pub mod model;
pub mod produce;
pub mod run;
pub mod serve;
pub mod sql;
pub mod validate;
