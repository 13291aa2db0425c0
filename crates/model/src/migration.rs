//! A migration file: pgroll's format in JSON or YAML. The migration's name is the file name
//! without its extension; errors name the file, the line and column, and the field.

use crate::error::LoadError;
use crate::operation::Operation;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The file as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "tandem migration",
    description = "A tandem (pgroll-compatible) migration file"
)]
pub struct MigrationFile {
    /// Optional; when present it must equal the file name without extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Name of the version schema; defaults to `<schema>_<migration name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_schema: Option<String>,
    /// pgroll writes each operation as a map with one key; serde_yaml needs to be told so.
    #[serde(with = "serde_yaml::with::singleton_map_recursive")]
    #[schemars(with = "Vec<Operation>")]
    pub operations: Vec<Operation>,
}

/// The file as read: [`MigrationFile`] plus the `$schema` pgroll writes into its files (the
/// URL of its JSON Schema), which says nothing about the migration and is dropped.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename = "MigrationFile")]
struct FileOnDisk {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version_schema: Option<String>,
    #[serde(with = "serde_yaml::with::singleton_map_recursive")]
    operations: Vec<Operation>,
    #[serde(default, rename = "$schema")]
    _json_schema: Option<serde::de::IgnoredAny>,
}

/// A migration ready to validate and plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Migration {
    pub name: String,
    /// The file name it came from, for messages.
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_schema: Option<String>,
    pub operations: Vec<Operation>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

impl Migration {
    /// Reads and parses a migration file.
    pub fn load(path: &Path) -> Result<Migration, LoadError> {
        let file = display_name(path);
        let format =
            Format::from_path(path).ok_or_else(|| LoadError::Extension { file: file.clone() })?;
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            file: file.clone(),
            source,
        })?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        Migration::parse(&text, format, &file, &name)
    }

    /// Parses a migration from text; `file` is used in messages, `name` is the migration's name.
    pub fn parse(
        text: &str,
        format: Format,
        file: &str,
        name: &str,
    ) -> Result<Migration, LoadError> {
        let parsed: FileOnDisk = match format {
            Format::Json => {
                let mut de = serde_json::Deserializer::from_str(text);
                serde_path_to_error::deserialize(&mut de).map_err(|e| {
                    let inner = e.inner();
                    syntax_error(
                        file,
                        Some(inner.line()),
                        Some(inner.column()),
                        e.path(),
                        &strip_json_position(&inner.to_string()),
                    )
                })?
            }
            Format::Yaml => {
                let de = serde_yaml::Deserializer::from_str(text);
                serde_path_to_error::deserialize(de).map_err(|e| {
                    let inner = e.inner();
                    let loc = inner.location();
                    syntax_error(
                        file,
                        loc.as_ref().map(|l| l.line()),
                        loc.as_ref().map(|l| l.column()),
                        e.path(),
                        &strip_yaml_position(&inner.to_string()),
                    )
                })?
            }
        };
        if name.is_empty() {
            return Err(LoadError::Invalid {
                file: file.to_string(),
                message: "the file name gives the migration's name and must not be empty".into(),
            });
        }
        if let Some(declared) = &parsed.name {
            if declared != name {
                return Err(LoadError::Invalid {
                    file: file.to_string(),
                    message: format!(
                        "name: the file declares name {declared:?} but a migration's name is its file name ({name:?}); rename the file or remove the field"
                    ),
                });
            }
        }
        if parsed.operations.is_empty() {
            return Err(LoadError::Syntax {
                file: file.to_string(),
                line: None,
                column: None,
                path: "operations".into(),
                message: "a migration needs at least one operation".into(),
            });
        }
        Ok(Migration {
            name: name.to_string(),
            file: file.to_string(),
            version_schema: parsed.version_schema,
            operations: parsed.operations,
        })
    }

    /// What the history's checksum is taken of: the SHA-256, in hex, of the migration as
    /// tandem reads it ([`Migration::to_file`]), as compact JSON with the keys of every object
    /// sorted. So layout, comments, key order, JSON against YAML and the older spellings of
    /// the format change nothing; any change to what the migration does changes it.
    pub fn checksum(&self) -> String {
        let value = serde_json::to_value(self.to_file()).expect("migration serializes");
        checksum_of_stored(&value)
    }

    /// The file content to store in the state tables: the canonical JSON of the operations.
    pub fn to_file(&self) -> MigrationFile {
        MigrationFile {
            name: None,
            version_schema: self.version_schema.clone(),
            operations: self.operations.clone(),
        }
    }
}

/// Why `name` cannot be a migration's name (which is also its file name without the
/// extension), or `None` when it can: letters, digits, `_` and `-`, at most 63 bytes, so that
/// it is a plain file name on every system and its version schema needs no shortening of the
/// name itself.
pub fn invalid_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a migration name must not be empty".into());
    }
    if name.len() > 63 {
        return Some(format!(
            "{name:?} is {} bytes long; a migration name has at most 63",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Some(format!(
            "{name:?} holds {c:?}; a migration name is letters, digits, `_` and `-` (it is the file name without its extension)"
        ));
    }
    None
}

/// The checksum of a migration as the state tables store it (the JSON of
/// [`Migration::to_file`]); equal to [`Migration::checksum`] of the migration it came from.
pub fn checksum_of_stored(value: &serde_json::Value) -> String {
    use sha2::{Digest, Sha256};
    let mut text = String::new();
    canonical_json(value, &mut text);
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compact JSON with object keys sorted, so that jsonb's own key order (PostgreSQL sorts
/// them) and serde's field order give the same text.
fn canonical_json(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The JSON Schema of the file format, generated from the types above, for editors.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(MigrationFile)).expect("schema serializes")
}

fn display_name(path: &Path) -> String {
    path.file_name()
        .and_then(|s| s.to_str())
        .map(str::to_string)
        .unwrap_or_else(|| path.display().to_string())
}

/// serde reports a missing field at its parent; we name the field itself, as users read it.
fn syntax_error(
    file: &str,
    line: Option<usize>,
    column: Option<usize>,
    path: &serde_path_to_error::Path,
    message: &str,
) -> LoadError {
    let mut path = path.to_string();
    // `?` marks a key the parser never read (the text ended or broke inside it): name the field
    // that holds it instead.
    while let Some(rest) = path.strip_suffix(".?") {
        path.truncate(rest.len());
    }
    if path == "." || path == "?" {
        path.clear();
    }
    let mut message = message.to_string();
    if let Some(rest) = message.strip_prefix("missing field `") {
        if let Some(field) = rest.split('`').next() {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(field);
            message = "missing field".into();
        }
    }
    LoadError::Syntax {
        file: file.to_string(),
        line: line.filter(|l| *l > 0),
        column: column.filter(|c| *c > 0),
        path,
        message,
    }
}

fn strip_json_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn strip_yaml_position(msg: &str) -> String {
    // serde_yaml appends " at line L column C"; we print the position ourselves.
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    // Its messages also start with the path it knows ("operations[0].x: "), which we print too.
    match msg.find(": ") {
        Some(i)
            if !msg[..i].contains(' ') && (msg[..i].contains('.') || msg[..i].contains('[')) =>
        {
            msg[i + 2..].to_string()
        }
        _ => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml_err(text: &str) -> String {
        Migration::parse(text, Format::Yaml, "03_add_column.yaml", "03_add_column")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn missing_field_names_the_field() {
        let e = yaml_err(
            "operations:\n  - add_column:\n      table: t\n      column:\n        name: c\n",
        );
        assert!(
            e.starts_with("03_add_column.yaml:")
                && e.contains(": operations[0].add_column.column.type: missing field"),
            "{e}"
        );
    }

    #[test]
    fn unknown_field_is_an_error() {
        let e = yaml_err("operations:\n  - drop_table:\n      name: t\n      cascade: true\n");
        assert!(
            e.contains("operations[0].drop_table") && e.contains("unknown field `cascade`"),
            "{e}"
        );
        let e = yaml_err("operations:\n  - drop_tabel:\n      name: t\n");
        assert!(e.contains("unknown variant `drop_tabel`"), "{e}");
    }

    #[test]
    fn json_errors_carry_line_and_column() {
        let e = Migration::parse(
            "{\"operations\": [{\"drop_table\": {\"nam\": \"x\"}}]}",
            Format::Json,
            "a.json",
            "a",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("a.json:1:"), "{e}");
        assert!(e.contains("operations[0].drop_table"), "{e}");
    }

    #[test]
    fn nullable_fields_distinguish_absent_and_null() {
        use crate::operation::{Nullable, Operation};
        let m = Migration::parse(
            "operations:\n  - alter_column:\n      table: t\n      column: c\n      default: null\n",
            Format::Yaml,
            "x.yaml",
            "x",
        )
        .unwrap();
        let Operation::AlterColumn(a) = &m.operations[0] else {
            panic!()
        };
        assert_eq!(a.default, Nullable::Null);
        assert_eq!(a.comment, Nullable::Absent);
    }
}
