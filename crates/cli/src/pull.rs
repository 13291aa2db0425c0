//! `tandem pull DIR`: the applied history written back as migration files, in today's form of
//! the format, for the migrations DIR does not have yet; and the placeholder file of a
//! baseline, which `pull` and `baseline DIR` write.

use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;
use tandem_model::migration::{Format, Migration};
use tandem_pg::state::MigrationRecord;

/// What `pull` did with each migration of the history.
#[derive(Debug, Default, Serialize)]
pub struct Pulled {
    /// Files written.
    pub written: Vec<String>,
    /// Migrations the directory already has (a file of that name, in any format).
    pub present: Vec<String>,
}

fn extension(format: Format) -> &'static str {
    match format {
        Format::Json => "json",
        Format::Yaml => "yaml",
    }
}

/// Whether `dir` has a migration file whose name (file name without extension) is `name`.
fn has(dir: &Path, name: &str) -> bool {
    ["json", "yaml", "yml"]
        .iter()
        .any(|ext| dir.join(format!("{name}.{ext}")).exists())
}

fn write_new(path: &Path, text: &str) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("{}: cannot create the file", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// A migration as a file's text, in today's form.
fn render(m: &Migration, format: Format) -> Result<String> {
    let file = m.to_file();
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(&file)? + "\n",
        Format::Yaml => serde_yaml::to_string(&file)?,
    })
}

/// The file a baseline leaves in the directory. It stands for the schema the database had
/// when the baseline was recorded: `migrate` leaves it aside on a database whose history holds
/// the baseline. It must still load, so it holds one statement that changes nothing.
pub fn baseline_placeholder(name: &str, schema: &str, format: Format) -> String {
    match format {
        Format::Json => format!(
            "{{\n  \"operations\": [\n    {{\n      \"sql\": {{\n        \"up\": \"SELECT 'tandem baseline {name}'\"\n      }}\n    }}\n  ]\n}}\n"
        ),
        Format::Yaml => format!(
            "# Baseline {name}: the schema {schema:?} as it was when `tandem baseline` recorded it, the\n\
             # starting point of the history. `tandem migrate` leaves this file aside on a database\n\
             # whose history holds the baseline. A new database needs that schema first (for\n\
             # instance from `pg_dump --schema-only`), then `tandem baseline {name}` of its own.\n\
             operations:\n\
             \x20 - sql:\n\
             \x20     up: SELECT 'tandem baseline {name}'\n"
        ),
    }
}

/// Writes the placeholder of baseline `name` into `dir` (created if missing), unless it has a
/// file of that name already.
pub fn write_baseline(
    dir: &Path,
    name: &str,
    schema: &str,
    format: Format,
) -> Result<Option<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    if has(dir, name) {
        return Ok(None);
    }
    let path = dir.join(format!("{name}.{}", extension(format)));
    write_new(&path, &baseline_placeholder(name, schema, format))?;
    Ok(Some(path.display().to_string()))
}

/// Writes each migration of `history` that `dir` has no file for.
pub fn pull(
    dir: &Path,
    schema: &str,
    history: &[MigrationRecord],
    format: Format,
) -> Result<Pulled> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let mut pulled = Pulled::default();
    for h in history {
        if has(dir, &h.name) {
            pulled.present.push(h.name.clone());
            continue;
        }
        if h.baseline {
            if let Some(path) = write_baseline(dir, &h.name, schema, format)? {
                pulled.written.push(path);
            }
            continue;
        }
        // Read back as a file is read, so that what an older tandem stored comes out in
        // today's form.
        let stored = serde_json::to_string(&h.migration)?;
        let m = Migration::parse(
            &stored,
            Format::Json,
            &format!("history of {}", h.name),
            &h.name,
        )
        .with_context(|| format!("reading migration {:?} from the history", h.name))?;
        let path = dir.join(format!("{}.{}", h.name, extension(format)));
        write_new(&path, &render(&m, format)?)?;
        pulled.written.push(path.display().to_string());
    }
    Ok(pulled)
}
