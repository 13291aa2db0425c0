//! The converted migration as text: YAML with each operation's notes as comments above it, or
//! JSON. Both are deterministic: the same SQL always gives the same bytes.

use super::{Conversion, NoteKind};
use tandem_model::Operation;

/// One operation as the file writes it, `{ kind: { ... } }`, without the fields that only
/// repeat their default (`unique: false`, `up: {}`, `on_delete: NO ACTION`), which the model
/// fills back in when it reads the file. `nullable` stays: it is what a reader looks for.
fn pruned(op: &Operation) -> serde_json::Value {
    fn prune(v: &mut serde_json::Value) {
        if let serde_json::Value::Object(map) = v {
            map.retain(|k, v| {
                let default = match v {
                    serde_json::Value::Bool(b) => !*b && k != "nullable",
                    serde_json::Value::Object(m) => m.is_empty() && (k == "up" || k == "down"),
                    serde_json::Value::String(s) => {
                        ((k == "index" || k == "up" || k == "down") && s.is_empty())
                            || (k == "match_type" && s == "SIMPLE")
                            || ((k == "on_delete" || k == "on_update") && s == "NO ACTION")
                            || (k == "method" && s == "btree")
                    }
                    _ => false,
                };
                !default
            });
            map.values_mut().for_each(prune);
        } else if let serde_json::Value::Array(items) = v {
            items.iter_mut().for_each(prune);
        }
    }
    let mut v = serde_json::to_value(op).expect("operations serialize");
    prune(&mut v);
    v
}

pub fn yaml(c: &Conversion) -> String {
    let mut out = format!(
        "# Converted by `tandem convert` from {}.\n",
        c.file.replace('\n', " ")
    );
    if c.has_placeholders() {
        out.push_str(
            "# Write every TODO below: `tandem validate` refuses the file until they are gone.\n",
        );
    }
    for n in c.dropped.iter() {
        out.push_str(&comment(&format!(
            "line {}: {}: {}",
            n.line,
            n.kind.label(),
            n.message
        )));
    }
    out.push_str("operations:\n");
    for op in &c.operations {
        let mut notes: Vec<_> = op.notes.iter().collect();
        notes.sort_by_key(|n| n.kind);
        out.push_str(&format!("  # line {}\n", op.line));
        for n in notes {
            out.push_str(&indent(&comment(&format!(
                "{}: {}",
                n.kind.label(),
                n.message
            ))));
        }
        let body = serde_yaml::to_string(&pruned(&op.operation)).expect("operations serialize");
        let mut first = true;
        for line in body.lines() {
            out.push_str(if first { "  - " } else { "    " });
            out.push_str(line);
            out.push('\n');
            first = false;
        }
    }
    out
}

pub fn json(c: &Conversion) -> String {
    let operations: Vec<_> = c.operations.iter().map(|o| pruned(&o.operation)).collect();
    let doc = serde_json::json!({ "operations": operations });
    let mut s = serde_json::to_string_pretty(&doc).expect("operations serialize");
    s.push('\n');
    s
}

/// `# text`, wrapped at about 96 columns.
fn comment(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() > 1 && line.len() + word.len() + 1 > 96 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#  ");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

impl NoteKind {
    /// Notes of this kind go to standard error as well as into the file.
    pub fn is_for_stderr(self) -> bool {
        matches!(self, NoteKind::Todo | NoteKind::Warning)
    }
}
