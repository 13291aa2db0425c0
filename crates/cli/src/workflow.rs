//! The everyday workflow commands around a migrations directory: `create`, `pull`,
//! `baseline`, and what `status DIR` adds (the directory's files against the history).

use crate::cli::Global;
use crate::render;
use crate::run::{connect_options, engine_options, load_all, migration_files};
use anyhow::Result;
use serde_json::json;
use std::path::Path;
use tandem_model::migration::Format;
use tandem_pg::history::FileState;
use tandem_pg::state::MigrationRecord;
use tandem_pg::Engine;

pub fn create(dir: &Path, name: &str, format: Option<Format>, json: bool) -> Result<()> {
    let path = crate::create::create(dir, name, format)?;
    render::result(
        json,
        json!({"ok": true, "created": path.display().to_string()}),
        &format!(
            "created {}: write its operations, then `tandem validate {}`",
            path.display(),
            dir.display()
        ),
    );
    Ok(())
}

pub fn pull(g: &Global, dir: &Path, format: Format, json: bool) -> Result<()> {
    let mut client = tandem_pg::connect(&connect_options(g))?;
    let status = Engine::new(&mut client, engine_options(g, None)).status()?;
    if !status.initialized {
        return Err(tandem_pg::Error::NotInitialized {
            state_schema: g.state_schema.clone(),
        }
        .into());
    }
    let pulled = crate::pull::pull(dir, &g.schema, &status.history, format)?;
    let mut human = format!(
        "{}: wrote {} file(s), {} already there",
        dir.display(),
        pulled.written.len(),
        pulled.present.len()
    );
    for w in &pulled.written {
        human.push_str(&format!("\n  {w}"));
    }
    render::result(json, json!({"ok": true, "pulled": pulled}), &human);
    Ok(())
}

pub fn baseline(
    g: &Global,
    name: &str,
    dir: Option<&Path>,
    format: Format,
    json: bool,
) -> Result<()> {
    let mut client = tandem_pg::connect(&connect_options(g))?;
    let report = Engine::new(&mut client, engine_options(g, None)).baseline(name)?;
    let file = match dir {
        Some(dir) => crate::pull::write_baseline(dir, name, &g.schema, format)?,
        None => None,
    };
    let mut human = format!(
        "baseline {} recorded: schema {:?} as it is now ({} table(s)) is the starting point of the history; later migrations follow it",
        report.name, report.schema, report.tables
    );
    if let Some(before) = &report.follows {
        human.push_str(&format!(
            " (it follows {before:?}: `migrate` ignores what came before it)"
        ));
    }
    if let Some(file) = &file {
        human.push_str(&format!("\nwrote its placeholder {file}"));
    }
    render::result(
        json,
        json!({"ok": true, "baseline": report, "file": file}),
        &human,
    );
    Ok(())
}

/// `status DIR`: the directory's files against the history, as JSON and as text.
pub fn directory(dir: &Path, history: &[MigrationRecord]) -> Result<(serde_json::Value, String)> {
    let files = load_all(&migration_files(dir)?)?;
    let compared = tandem_pg::history::compare(history, &files);
    let count = |s: FileState| compared.files.iter().filter(|f| f.state == s).count();
    let mut human = format!(
        "\ndirectory {}: {} applied, {} pending",
        dir.display(),
        count(FileState::Applied) + count(FileState::BeforeBaseline),
        count(FileState::Pending)
    );
    if count(FileState::Edited) > 0 {
        human.push_str(&format!(
            ", {} edited since applied",
            count(FileState::Edited)
        ));
    }
    for f in &compared.files {
        let what = match f.state {
            FileState::Pending => "pending",
            FileState::Edited => "edited since it was applied: `migrate` refuses it",
            FileState::Applied | FileState::BeforeBaseline => continue,
        };
        human.push_str(&format!("\n  {:<40} {what}", f.file));
    }
    if let Some(m) = &compared.mismatch {
        human.push_str(&format!("\n  {m}"));
    }
    Ok((serde_json::to_value(&compared)?, human))
}
