//! The PostgreSQL side of tandem: connections and session setup, the lock discipline, the state
//! tables, catalog introspection, live validation, the preflight, the batched backfill and the
//! expand/contract engine. Throwaway clusters are `tandem-cluster`'s. Invariants: every
//! statement that may wait for a lock on a live table goes through `locks`; nothing here
//! prints; no unsafe code.

#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![forbid(unsafe_code)]

pub mod backfill;
pub mod connect;
pub mod engine;
pub mod error;
pub mod events;
pub mod evidence;
pub mod grants;
pub mod history;
pub mod introspect;
pub mod live;
pub mod locks;
pub mod monitor;
pub mod preflight;
pub mod state;
pub mod status;
pub mod throttle;
pub mod trace;

pub use connect::{connect, ConnectOptions};
pub use engine::{Engine, EngineOptions, Status};
pub use error::{Error, Result};
pub use events::{Event, OnEvent};
pub use locks::{LockTimeout, LongStatementTimeout, RetryPolicy};
pub use status::MigrationStatus;
