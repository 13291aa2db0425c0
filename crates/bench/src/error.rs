//! The benchmark's typed errors. Each names what it was doing when it failed.

use std::path::PathBuf;

/// A benchmark could not be set up or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Cluster(#[from] tandem_cluster::ClusterError),
    #[error(transparent)]
    Engine(#[from] tandem_pg::Error),
    #[error("the benchmark's migration: {0}")]
    Migration(#[from] tandem_model::LoadError),
    #[error("{context}: {}", tandem_pg::error::describe(.source))]
    Sql {
        context: String,
        #[source]
        source: postgres::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pgbench ({}): {message}", program.display())]
    Pgbench { program: PathBuf, message: String },
    #[error("drawing the chart {}: {message}", path.display())]
    Chart { path: PathBuf, message: String },
    #[error("{0}")]
    Options(String),
    #[error("the benchmark's clients: {0}")]
    Traffic(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps a `postgres::Error` with what was being done.
pub(crate) fn sql(context: impl Into<String>) -> impl FnOnce(postgres::Error) -> Error {
    let context = context.into();
    move |source| Error::Sql { context, source }
}

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}
