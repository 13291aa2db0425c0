//! pg_query's parse tree, read: the one decoding layer that the statement model (`parse`),
//! PL/pgSQL bodies (`body`) and `convert` share. Names and constants out of their nodes,
//! option lists, the nodes of one kind anywhere below a node, text parsed as one statement or
//! one expression, and expressions, types and statements printed back with PostgreSQL's own
//! deparser, so what lands in a message or a migration file is what the server would read.

use pg_query::protobuf::{self, a_const, Node};
use pg_query::NodeEnum;

/// The first statement of `text`, or `None` when it does not parse or is empty.
pub fn first_statement(text: &str) -> Option<NodeEnum> {
    pg_query::parse(text, pg_query::ParserOptions::DEFAULT)
        .ok()?
        .protobuf
        .stmts
        .into_iter()
        .next()?
        .stmt?
        .node
}

/// `expr` read with the grammar as the one expression of `SELECT expr`; `None` when it is not
/// exactly one expression.
pub fn select_expression(expr: &str) -> Option<NodeEnum> {
    let NodeEnum::SelectStmt(select) = first_statement(&format!("SELECT {expr}"))? else {
        return None;
    };
    let [target] = select.target_list.as_slice() else {
        return None;
    };
    let NodeEnum::ResTarget(target) = target.node.as_ref()? else {
        return None;
    };
    target.val.as_deref()?.node.clone()
}

/// The last part of a possibly qualified name given as a list of `String` nodes.
pub fn last_name(nodes: &[Node]) -> String {
    nodes
        .iter()
        .rev()
        .find_map(string_of)
        .unwrap_or_default()
        .to_string()
}

/// A possibly qualified name given as a list of `String` nodes, its parts joined with dots.
pub fn dotted_name(nodes: &[Node]) -> String {
    strings(nodes).join(".")
}

/// A constant's value as text: an `A_Const` of any kind, or a `String` node.
pub fn const_text(node: &Node) -> Option<String> {
    match node.node.as_ref()? {
        NodeEnum::AConst(c) => Some(match c.val.as_ref()? {
            a_const::Val::Ival(i) => i.ival.to_string(),
            a_const::Val::Fval(f) => f.fval.clone(),
            a_const::Val::Boolval(b) => b.boolval.to_string(),
            a_const::Val::Sval(s) => s.sval.clone(),
            a_const::Val::Bsval(b) => b.bsval.clone(),
        }),
        NodeEnum::String(s) => Some(s.sval.clone()),
        _ => None,
    }
}

/// The value of a string constant (`'...'`, `$q$...$q$`); `None` for any other node.
pub fn string_constant(node: &NodeEnum) -> Option<String> {
    match node {
        NodeEnum::AConst(c) => match c.val.as_ref()? {
            a_const::Val::Sval(s) => Some(s.sval.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// The `DefElem`s of an option list (`WITH (...)`, a routine's options, `EXPLAIN (...)`).
pub fn def_elems(options: &[Node]) -> impl Iterator<Item = &protobuf::DefElem> {
    options.iter().filter_map(|o| match o.node.as_ref()? {
        NodeEnum::DefElem(d) => Some(d.as_ref()),
        _ => None,
    })
}

/// Whether the option `name` is given and not set to false (`CONCURRENTLY`, `FULL`).
pub fn has_option(options: &[Node], name: &str) -> bool {
    def_elems(options).any(|d| {
        d.defname.eq_ignore_ascii_case(name)
            && !matches!(d.arg.as_deref().and_then(|a| a.node.as_ref()), Some(NodeEnum::Boolean(b)) if !b.boolval)
    })
}

/// The string value of the option called `name` (a routine's `language`), lower-cased.
pub fn def_string(options: &[Node], name: &str) -> Option<String> {
    def_elems(options).find_map(|d| match d.arg.as_deref()?.node.as_ref()? {
        NodeEnum::String(s) if d.defname == name => Some(s.sval.to_ascii_lowercase()),
        _ => None,
    })
}

/// Every node of kind `kind` (`"FuncCall"`, `"ColumnRef"`) anywhere below `node`, in
/// tree order, as pg_query's JSON form of the tree.
pub fn nodes_of_kind(node: &Node, kind: &str) -> Vec<serde_json::Value> {
    fn walk(v: &serde_json::Value, kind: &str, out: &mut Vec<serde_json::Value>) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(found) = map.get(kind) {
                    out.push(found.clone());
                }
                map.values().for_each(|v| walk(v, kind, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, kind, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::to_value(node) {
        walk(&v, kind, &mut out);
    }
    out
}

/// The last part of a name list in pg_query's JSON form (a `FuncCall`'s `funcname`, a
/// `ColumnRef`'s `fields`).
pub fn json_last_name(names: &serde_json::Value) -> Option<&str> {
    names
        .as_array()?
        .last()?
        .pointer("/node/String/sval")?
        .as_str()
}

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
    if def_elems(options).count() != options.len() {
        return None;
    }
    let mut parts = Vec::new();
    for d in def_elems(options) {
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
            Some(NodeEnum::AConst(c)) if !matches!(c.val, Some(a_const::Val::Bsval(_))) => {
                const_text(d.arg.as_deref()?)?
            }
            Some(_) => return None,
        };
        parts.push(format!("{}={value}", d.defname));
    }
    Some(parts.join(", "))
}

/// The columns an expression reads (each `ColumnRef`'s last name), in order of first mention.
pub fn column_refs(node: &Node) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in nodes_of_kind(node, "ColumnRef") {
        if let Some(name) = json_last_name(&r["fields"]) {
            if !out.iter().any(|o| o == name) {
                out.push(name.to_string());
            }
        }
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
