//! Text from the parse tree: expressions, types and single statements printed back with
//! PostgreSQL's own deparser, so what lands in a migration file is what the server would read.

use pg_query::protobuf::{self, a_const, Node};
use pg_query::NodeEnum;

fn boxed(node: NodeEnum) -> Option<Box<Node>> {
    Some(Box::new(Node { node: Some(node) }))
}

/// Deparses `SELECT <targets>` and returns what follows `SELECT `.
fn select_text(targets: Vec<Node>) -> Option<String> {
    let select = protobuf::SelectStmt {
        target_list: targets,
        limit_option: protobuf::LimitOption::Default as i32,
        op: protobuf::SetOperation::SetopNone as i32,
        ..Default::default()
    };
    let text = NodeEnum::SelectStmt(Box::new(select))
        .deparse(pg_query::DeparseOptions::default())
        .ok()?;
    text.strip_prefix("SELECT ").map(str::to_string)
}

fn target(expr: Node) -> Node {
    Node {
        node: Some(NodeEnum::ResTarget(Box::new(protobuf::ResTarget {
            val: Some(Box::new(expr)),
            ..Default::default()
        }))),
    }
}

/// An expression as SQL text, e.g. a default, a check or a `USING` clause.
pub fn expr(node: &Node) -> Option<String> {
    select_text(vec![target(node.clone())])
}

/// A type name as SQL text, e.g. `varchar(20)`, `numeric(10,2)`, `text[]`.
pub fn type_name(t: &protobuf::TypeName) -> Option<String> {
    let cast = protobuf::TypeCast {
        arg: boxed(NodeEnum::AConst(protobuf::AConst {
            isnull: true,
            ..Default::default()
        })),
        type_name: Some(t.clone()),
        location: -1,
    };
    let text = select_text(vec![target(Node {
        node: Some(NodeEnum::TypeCast(Box::new(cast))),
    })])?;
    if let Some(rest) = text.strip_prefix("NULL::") {
        return Some(rest.to_string());
    }
    text.strip_prefix("CAST(NULL AS ")
        .and_then(|r| r.strip_suffix(')'))
        .map(str::to_string)
}

/// One statement as SQL text.
pub fn statement(node: &NodeEnum) -> Option<String> {
    node.deparse(pg_query::DeparseOptions::default()).ok()
}

/// A string value of a `String` node.
pub fn string_of(node: &Node) -> Option<&str> {
    match node.node.as_ref()? {
        NodeEnum::String(s) => Some(&s.sval),
        _ => None,
    }
}

/// The names of a list of `String` nodes.
pub fn strings(nodes: &[Node]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(string_of)
        .map(str::to_string)
        .collect()
}

/// `WITH (fillfactor = 70)` options as `fillfactor=70`.
pub fn storage_parameters(options: &[Node]) -> Option<String> {
    let mut parts = Vec::new();
    for o in options {
        let NodeEnum::DefElem(d) = o.node.as_ref()? else {
            return None;
        };
        if !d.defnamespace.is_empty() {
            return None;
        }
        let value = match d.arg.as_deref().and_then(|a| a.node.as_ref()) {
            None => "true".to_string(),
            Some(NodeEnum::Integer(i)) => i.ival.to_string(),
            Some(NodeEnum::Float(f)) => f.fval.clone(),
            Some(NodeEnum::String(s)) => s.sval.clone(),
            Some(NodeEnum::TypeName(t)) => strings(&t.names).join("."),
            Some(NodeEnum::Boolean(b)) => b.boolval.to_string(),
            Some(NodeEnum::AConst(c)) => match c.val.as_ref()? {
                a_const::Val::Ival(i) => i.ival.to_string(),
                a_const::Val::Fval(f) => f.fval.clone(),
                a_const::Val::Sval(s) => s.sval.clone(),
                a_const::Val::Boolval(b) => b.boolval.to_string(),
                a_const::Val::Bsval(_) => return None,
            },
            Some(_) => return None,
        };
        parts.push(format!("{}={value}", d.defname));
    }
    Some(parts.join(", "))
}

/// The columns an expression reads (each `ColumnRef`'s last name), in order of first mention.
pub fn column_refs(node: &Node) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(r) = map.get("ColumnRef") {
                    if let Some(name) = r["fields"]
                        .as_array()
                        .and_then(|f| f.last())
                        .and_then(|p| p.pointer("/node/String/sval"))
                        .and_then(|s| s.as_str())
                    {
                        if !out.iter().any(|o| o == name) {
                            out.push(name.to_string());
                        }
                    }
                }
                for v in map.values() {
                    walk(v, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::to_value(node) {
        walk(&v, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_target(sql: &str) -> Node {
        let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).unwrap();
        let stmt = parsed.protobuf.stmts[0].stmt.clone().unwrap();
        let NodeEnum::SelectStmt(s) = stmt.node.unwrap() else {
            panic!()
        };
        let NodeEnum::ResTarget(t) = s.target_list[0].node.clone().unwrap() else {
            panic!()
        };
        *t.val.unwrap()
    }

    #[test]
    fn expressions_and_types_print_back() {
        assert_eq!(
            expr(&first_target("SELECT coalesce(a, 'x') || lower(\"B c\")")).unwrap(),
            "COALESCE(a, 'x') || lower(\"B c\")"
        );
        let NodeEnum::TypeCast(c) = first_target("SELECT 1::varchar(20)[]").node.unwrap() else {
            panic!()
        };
        assert_eq!(
            type_name(c.type_name.as_ref().unwrap()).unwrap(),
            "varchar(20)[]"
        );
        let NodeEnum::TypeCast(c) = first_target("SELECT 1::timestamp with time zone")
            .node
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            type_name(c.type_name.as_ref().unwrap()).unwrap(),
            "timestamp with time zone"
        );
        assert_eq!(
            column_refs(&first_target("SELECT a > 0 AND t.b < a")),
            ["a", "b"]
        );
    }
}
