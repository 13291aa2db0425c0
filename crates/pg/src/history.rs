//! The history against a directory of files: which files are applied, which are pending, and
//! which were edited since they were applied (by checksum); and the baseline, the starting
//! point of the history of a database that existed before tandem.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::introspect::{read_schema, schema_exists};
use crate::state::{Baseline, MigrationRecord};
use serde::Serialize;
use tandem_model::{shorten_name, Migration};

/// Where a file of the directory stands against the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    /// Applied before the latest baseline (or the baseline itself): part of the history before
    /// its starting point, never checked or applied again.
    BeforeBaseline,
    /// Applied, and unchanged since.
    Applied,
    /// Applied, and changed since (its checksum differs from the history's).
    Edited,
    /// Not applied yet.
    Pending,
}

/// One file of the directory and where it stands.
#[derive(Debug, Clone, Serialize)]
pub struct DirectoryFile {
    pub name: String,
    pub file: String,
    pub state: FileState,
}

/// The directory against the history.
#[derive(Debug, Clone, Serialize)]
pub struct Compared {
    pub files: Vec<DirectoryFile>,
    /// The history holds a migration that the directory does not have at its place; what then
    /// follows in the directory is left out of `files`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<Mismatch>,
}

/// Where the history and the directory part: the history's migration at `position` (from 1)
/// is `database`, and the directory has `directory` there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    pub position: usize,
    pub database: String,
    pub directory: Option<String>,
}

impl Mismatch {
    pub fn error(&self) -> Error {
        Error::HistoryMismatch {
            position: self.position,
            database: self.database.clone(),
            directory: self.directory.clone(),
        }
    }
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error())
    }
}

impl Compared {
    pub fn pending(&self) -> impl Iterator<Item = &DirectoryFile> {
        self.files.iter().filter(|f| f.state == FileState::Pending)
    }

    /// The refusal `migrate` makes: the history does not match, or an applied file was edited.
    pub fn refusal(&self) -> Option<Error> {
        if let Some(m) = &self.mismatch {
            return Some(m.error());
        }
        self.files
            .iter()
            .find(|f| f.state == FileState::Edited)
            .map(|f| Error::AppliedFileEdited {
                file: f.file.clone(),
                name: f.name.clone(),
            })
    }
}

/// Matches `files` (in name order) against the schema's `history` (oldest first). The history
/// after its latest baseline must be the directory's first files, in order; files named as a
/// migration of the history up to that baseline (the baseline's placeholder, files `pull`
/// wrote) are left aside. An applied file is `Edited` when its checksum is not the history's.
pub fn compare(history: &[MigrationRecord], files: &[Migration]) -> Compared {
    let start = history
        .iter()
        .rposition(|h| h.baseline)
        .map_or(0, |i| i + 1);
    let (before, after) = history.split_at(start);
    let mut out = Compared {
        files: Vec::new(),
        mismatch: None,
    };
    let entry = |m: &Migration, state| DirectoryFile {
        name: m.name.clone(),
        file: m.file.clone(),
        state,
    };
    let mut rest = Vec::new();
    for m in files {
        if before.iter().any(|h| h.name == m.name) {
            out.files.push(entry(m, FileState::BeforeBaseline));
        } else {
            rest.push(m);
        }
    }
    for (i, h) in after.iter().enumerate() {
        match rest.get(i) {
            Some(m) if m.name == h.name => {
                let state = if m.checksum() == h.checksum() {
                    FileState::Applied
                } else {
                    FileState::Edited
                };
                out.files.push(entry(m, state));
            }
            found => {
                out.mismatch = Some(Mismatch {
                    position: start + i + 1,
                    database: h.name.clone(),
                    directory: found.map(|f| f.name.clone()),
                });
                return out;
            }
        }
    }
    for m in rest.into_iter().skip(after.len()) {
        out.files.push(entry(m, FileState::Pending));
    }
    out
}

/// What `baseline` recorded.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineReport {
    pub name: String,
    pub schema: String,
    /// Tables of the schema the baseline holds.
    pub tables: usize,
    /// The migration the baseline follows in the history, if any: a baseline restarts the
    /// history, and `migrate` ignores what came before it.
    pub follows: Option<String>,
}

impl Engine<'_> {
    /// Records the schema as it is now as the newest entry of the history, with no operations:
    /// the starting point for a database that existed before tandem. Later migrations are
    /// planned against the live schema as always, and follow it in the history. Nothing else
    /// changes; no version schema is created.
    pub fn baseline(&mut self, name: &str) -> Result<BaselineReport> {
        if let Some(why) = tandem_model::migration::invalid_name(name) {
            return Err(Error::Other(format!("baseline: {why}")));
        }
        self.locked(|e, _| {
            let schema = e.opts.schema.clone();
            if let Some(active) = e.state.active(e.client, &schema)? {
                return Err(Error::ActiveMigration {
                    schema,
                    name: active.name,
                    status: active.status,
                });
            }
            let history = e.state.history(e.client, &schema)?;
            if history.iter().any(|h| h.name == name) {
                return Err(Error::AlreadyApplied {
                    schema,
                    name: name.to_string(),
                });
            }
            // The name a migration called so would get: `complete` drops the version schemas of
            // the history, so one that exists must not become the baseline's.
            let version_schema = shorten_name(&format!("{schema}_{name}"));
            if schema_exists(e.client, &version_schema)? {
                return Err(Error::VersionSchemaExists(version_schema));
            }
            let snapshot = read_schema(e.client, &schema)?;
            let tables = snapshot.tables.len();
            let snapshot = serde_json::to_value(snapshot).expect("snapshot serializes");
            let follows = history.last().map(|h| h.name.clone());
            e.state.insert_baseline(
                e.client,
                &Baseline {
                    schema: &schema,
                    name,
                    version_schema: &version_schema,
                    parent: follows.as_deref(),
                    snapshot: &snapshot,
                },
            )?;
            Ok(BaselineReport {
                name: name.to_string(),
                schema,
                tables,
                follows,
            })
        })
    }
}
