//! The `error` object of `--json` output: the message as a person reads it, and, when the error
//! knows them, the file, the line and column, the operation (`operations[1].alter_column`) and
//! the field inside it, so a script can point at the place without parsing the message.

use serde_json::{json, Map, Value};

/// `{"message": ..., "file": ..., "operation": ..., "field": ..., ...}`; keys that are not
/// known are left out.
pub fn error_json(err: &anyhow::Error) -> Value {
    let mut doc = Map::new();
    doc.insert(
        "message".into(),
        Value::String(crate::unix::error_text(err, false)),
    );
    for cause in err.chain() {
        if let Some(place) = place(cause) {
            for (k, v) in place {
                doc.entry(k).or_insert(v);
            }
        }
    }
    Value::Object(doc)
}

/// What one error in the chain says of where it happened.
fn place(cause: &(dyn std::error::Error + 'static)) -> Option<Map<String, Value>> {
    use tandem_model::{LoadError, ValidationError};
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            m.insert(k.into(), v);
        }
    };
    if let Some(v) = cause.downcast_ref::<ValidationError>() {
        put("file", json!(v.file));
        put(
            "operation",
            json!(format!("operations[{}].{}", v.op_index, v.op_kind)),
        );
        if !v.field.is_empty() {
            put("field", json!(v.field));
        }
    } else if let Some(e) = cause.downcast_ref::<LoadError>() {
        match e {
            LoadError::Syntax {
                file,
                line,
                column,
                path,
                ..
            } => {
                put("file", json!(file));
                put("line", json!(line));
                put("column", json!(column));
                let (operation, field) = split_path(path);
                if let Some(o) = operation {
                    put("operation", json!(o));
                }
                if let Some(f) = field {
                    put("field", json!(f));
                }
            }
            LoadError::Io { file, .. }
            | LoadError::Extension { file }
            | LoadError::Invalid { file, .. } => put("file", json!(file)),
            _ => return None,
        }
    } else if let Some(e) = cause.downcast_ref::<tandem_lint::LintError>() {
        match e {
            tandem_lint::LintError::Syntax {
                file, line, column, ..
            } => {
                put("file", json!(file));
                put("line", json!(line));
                put("column", json!(column));
            }
            tandem_lint::LintError::Config { file, .. }
            | tandem_lint::LintError::NothingToConvert { file }
            | tandem_lint::LintError::Fragments { file, .. } => put("file", json!(file)),
            _ => return None,
        }
    } else if let Some(e) = cause.downcast_ref::<tandem_pg::Error>() {
        match e {
            tandem_pg::Error::UpFailsOnRow(u) => {
                put("file", json!(u.file));
                let (operation, field) = split_path(&u.origin);
                if let Some(o) = operation {
                    put("operation", json!(o));
                }
                if let Some(f) = field {
                    put("field", json!(f));
                }
                put("table", json!(u.table));
                put("column", json!(u.column));
            }
            tandem_pg::Error::Step(s) => {
                if let Some(file) = &s.migration {
                    put("file", json!(file));
                }
                if let Some(o) = &s.operation {
                    put("operation", json!(o));
                }
                put("step", json!(s.description));
            }
            tandem_pg::Error::Db { source, .. } => {
                if let Some(db) = source.as_db_error() {
                    put("sqlstate", json!(db.code().code()));
                }
            }
            _ => return None,
        }
    } else if let Some(db) = cause
        .downcast_ref::<postgres::Error>()
        .and_then(|e| e.as_db_error())
    {
        put("sqlstate", json!(db.code().code()));
    } else {
        return None;
    }
    Some(m)
}

/// `operations[0].add_column.column.type` as the operation `operations[0].add_column` and the
/// field `column.type`.
fn split_path(path: &str) -> (Option<String>, Option<String>) {
    let Some(rest) = path.strip_prefix("operations[") else {
        return (
            None,
            (!path.is_empty() && path != ".").then(|| path.to_string()),
        );
    };
    let Some(close) = rest.find(']') else {
        return (None, Some(path.to_string()));
    };
    let index = &rest[..close];
    let after = rest[close + 1..].trim_start_matches('.');
    let (kind, field) = match after.split_once('.') {
        Some((k, f)) => (k, Some(f.to_string())),
        None => (after, None),
    };
    let operation = if kind.is_empty() {
        format!("operations[{index}]")
    } else {
        format!("operations[{index}].{kind}")
    };
    (Some(operation), field)
}

#[cfg(test)]
mod tests {
    use super::split_path;

    #[test]
    fn a_path_splits_into_operation_and_field() {
        assert_eq!(
            split_path("operations[0].add_column.column.type"),
            (
                Some("operations[0].add_column".into()),
                Some("column.type".into())
            )
        );
        assert_eq!(
            split_path("operations[2].sql"),
            (Some("operations[2].sql".into()), None)
        );
        assert_eq!(split_path("name"), (None, Some("name".into())));
    }
}
