//! Parses SQL with PostgreSQL's own grammar (`pg_query`) and reduces each statement to the
//! [`StmtKind`] model. Also scans the tokens once for comments (where ignores live) and for
//! identifiers longer than PostgreSQL's limit.

use crate::model::*;
use crate::tree::{self, const_text, def_string, dotted_name, has_option, last_name, string_of};
use pg_query::protobuf::{
    self, a_const, AlterTableType, ConstrType, DropBehavior, ObjectType, ReindexObjectType, Token,
    TransactionStmtKind, VariableSetKind,
};
use pg_query::{Node, NodeEnum};

/// PostgreSQL truncates longer identifiers.
pub use tandem_model::MAX_IDENT_BYTES as MAX_IDENTIFIER_BYTES;

/// Functions whose value changes per row: a default calling one must be computed for every
/// existing row, which rewrites the table.
pub const VOLATILE_FUNCTIONS: &[&str] = &[
    "random",
    "random_normal",
    "gen_random_uuid",
    "uuidv4",
    "uuidv7",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "gen_random_bytes",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "setseed",
];

/// The source as statements, plus its comments.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub statements: Vec<Statement>,
    pub comments: Vec<Comment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub span: Span,
    pub text: String,
}

/// The parser refused the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset of the start of the statement the parser refused.
    pub offset: usize,
    pub message: String,
}

pub fn parse(source: &str) -> Result<Parsed, SyntaxError> {
    let result = pg_query::parse(source, pg_query::ParserOptions::DEFAULT)
        .map_err(|e| locate_error(source, e))?;
    let scan = pg_query::scan(source).map_err(|e| SyntaxError {
        offset: 0,
        message: e.to_string(),
    })?;
    let mut comments = Vec::new();
    let mut long = Vec::new();
    // The tokens other than comments, for finding clauses in statements.
    let mut tokens: Vec<(Span, i32)> = Vec::with_capacity(scan.tokens.len());
    for t in &scan.tokens {
        let span = Span {
            start: t.start as usize,
            end: t.end as usize,
        };
        let text = &source[span.start..span.end];
        if t.token == Token::SqlComment as i32 || t.token == Token::CComment as i32 {
            comments.push(Comment {
                span,
                text: text.to_string(),
            });
            continue;
        }
        if t.token == Token::Ident as i32 {
            let bare = text.trim_matches('"').replace("\"\"", "\"");
            if bare.len() > MAX_IDENTIFIER_BYTES {
                long.push((span.start, bare));
            }
        }
        tokens.push((span, t.token));
    }
    let mut statements = Vec::with_capacity(result.protobuf.stmts.len());
    for raw in &result.protobuf.stmts {
        let start = raw.stmt_location as usize;
        let end = if raw.stmt_len == 0 {
            source.len()
        } else {
            start + raw.stmt_len as usize
        };
        let span = trim_span(source, start, end);
        let node = raw.stmt.as_ref().and_then(|n| n.node.as_ref());
        let mut kind = node.map_or(StmtKind::Other, reduce);
        let in_span = {
            let from = tokens.partition_point(|(s, _)| s.start < span.start);
            let to = tokens.partition_point(|(s, _)| s.start < span.end);
            &tokens[from..to]
        };
        let clauses = match (node, &kind) {
            (Some(NodeEnum::AlterTableStmt(a)), StmtKind::AlterTable { actions, .. }) => {
                alter_clauses(in_span, a.relation.as_ref(), actions.len())
            }
            _ => Vec::new(),
        };
        if let StmtKind::Update { where_span, .. } | StmtKind::Delete { where_span, .. } = &mut kind
        {
            *where_span = where_clause_span(in_span, span);
        }
        let long_identifiers = long
            .iter()
            .filter(|(at, _)| *at >= span.start && *at < span.end)
            .map(|(_, name)| name.clone())
            .collect();
        statements.push(Statement {
            span,
            kind,
            long_identifiers,
            in_body: None,
            clauses,
        });
    }
    Ok(Parsed {
        statements,
        comments,
    })
}

/// The comments of `source`, found by PostgreSQL's scanner (which PL/pgSQL bodies use too).
/// Nothing when the scanner refuses the text.
pub fn comments(source: &str) -> Vec<Comment> {
    let Ok(scan) = pg_query::scan(source) else {
        return Vec::new();
    };
    scan.tokens
        .iter()
        .filter(|t| t.token == Token::SqlComment as i32 || t.token == Token::CComment as i32)
        .map(|t| {
            let span = Span {
                start: t.start as usize,
                end: t.end as usize,
            };
            Comment {
                span,
                text: source[span.start..span.end].to_string(),
            }
        })
        .collect()
}

/// Where each command of an ALTER TABLE sits: the commands follow the table's name and are
/// separated by commas outside parentheses. Empty when the tokens do not give one span per
/// action (a finding then points at the statement).
fn alter_clauses(
    tokens: &[(Span, i32)],
    relation: Option<&protobuf::RangeVar>,
    actions: usize,
) -> Vec<Span> {
    let Some(rv) = relation else {
        return Vec::new();
    };
    let Some(mut i) = tokens
        .iter()
        .position(|(s, _)| s.start == rv.location as usize)
    else {
        return Vec::new();
    };
    // Past the (possibly qualified) name.
    i += 1;
    while tokens
        .get(i)
        .is_some_and(|(_, t)| *t == Token::Ascii46 as i32)
    {
        i += 2;
    }
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start: Option<Span> = None;
    let mut last = Span::default();
    for (span, t) in tokens.iter().skip(i) {
        match *t {
            x if x == Token::Ascii40 as i32 || x == Token::Ascii91 as i32 => depth += 1,
            x if x == Token::Ascii41 as i32 || x == Token::Ascii93 as i32 => depth -= 1,
            x if x == Token::Ascii44 as i32 && depth == 0 => {
                if let Some(s) = start.take() {
                    out.push(Span {
                        start: s.start,
                        end: last.end,
                    });
                }
                continue;
            }
            x if x == Token::Ascii59 as i32 => break,
            _ => {}
        }
        start.get_or_insert(*span);
        last = *span;
    }
    if let Some(s) = start {
        out.push(Span {
            start: s.start,
            end: last.end,
        });
    }
    if out.len() == actions {
        out
    } else {
        Vec::new()
    }
}

/// From an UPDATE's or DELETE's `WHERE` (outside parentheses) to the end of its condition
/// (`RETURNING` or the statement's end).
fn where_clause_span(tokens: &[(Span, i32)], stmt: Span) -> Option<Span> {
    let mut depth = 0i32;
    let mut start = None;
    for (span, t) in tokens {
        match *t {
            x if x == Token::Ascii40 as i32 => depth += 1,
            x if x == Token::Ascii41 as i32 => depth -= 1,
            x if x == Token::Where as i32 && depth == 0 && start.is_none() => {
                start = Some(span.start)
            }
            x if x == Token::Returning as i32 && depth == 0 => {
                if let Some(start) = start {
                    return Some(Span {
                        start,
                        end: span.start,
                    });
                }
            }
            _ => {}
        }
    }
    start.map(|start| Span {
        start,
        end: stmt.end,
    })
}

/// The parser reports no position, so find the first statement that fails on its own. The
/// scanner's split drops statements it cannot tokenise, so text between its pieces is checked too.
fn locate_error(source: &str, error: pg_query::Error) -> SyntaxError {
    let message = match &error {
        pg_query::Error::Parse(m) => m.clone(),
        other => other.to_string(),
    };
    let at_gap = |from: usize, to: usize| {
        let span = trim_span(source, from, to);
        let text = &source[span.start..span.end];
        let body = text.trim_start_matches(|c: char| c == ';' || c.is_whitespace());
        (!body.is_empty()).then(|| SyntaxError {
            offset: span.start + text.len() - body.len(),
            message: message.clone(),
        })
    };
    let mut prev_end = 0;
    for piece in pg_query::split_with_scanner(source).unwrap_or_default() {
        let at = piece.as_ptr() as usize - source.as_ptr() as usize;
        if let Some(e) = at_gap(prev_end, at) {
            return e;
        }
        if let Err(pg_query::Error::Parse(m)) = pg_query::parse(piece, 0) {
            return SyntaxError {
                offset: trim_span(source, at, at + piece.len()).start,
                message: m,
            };
        }
        prev_end = at + piece.len();
    }
    at_gap(prev_end, source.len()).unwrap_or(SyntaxError { offset: 0, message })
}

/// Moves `start` past whitespace and comments, and `end` back over whitespace and `;`.
pub fn trim_span(source: &str, mut start: usize, mut end: usize) -> Span {
    let bytes = source.as_bytes();
    end = end.min(bytes.len());
    loop {
        while start < end && bytes[start].is_ascii_whitespace() {
            start += 1;
        }
        if bytes[start..end].starts_with(b"--") {
            start = source[start..end].find('\n').map_or(end, |i| start + i + 1);
        } else if bytes[start..end].starts_with(b"/*") {
            start = source[start..end].find("*/").map_or(end, |i| start + i + 2);
        } else {
            break;
        }
    }
    while end > start && (bytes[end - 1].is_ascii_whitespace() || bytes[end - 1] == b';') {
        end -= 1;
    }
    Span { start, end }
}

fn table_name(rv: Option<&protobuf::RangeVar>) -> TableName {
    rv.map_or_else(TableName::default, |rv| TableName {
        name: rv.relname.clone(),
        display: if rv.schemaname.is_empty() {
            rv.relname.clone()
        } else {
            format!("{}.{}", rv.schemaname, rv.relname)
        },
    })
}

fn node_tables(nodes: &[Node]) -> Vec<TableName> {
    nodes
        .iter()
        .filter_map(|n| match n.node.as_ref()? {
            NodeEnum::RangeVar(rv) => Some(table_name(Some(rv))),
            NodeEnum::VacuumRelation(v) => Some(table_name(v.relation.as_ref())),
            _ => None,
        })
        .collect()
}

fn reduce(node: &NodeEnum) -> StmtKind {
    match node {
        NodeEnum::TransactionStmt(t) => match TransactionStmtKind::try_from(t.kind) {
            Ok(TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart) => {
                StmtKind::Begin
            }
            Ok(TransactionStmtKind::TransStmtCommit) => StmtKind::Commit,
            Ok(TransactionStmtKind::TransStmtRollback) => StmtKind::Rollback,
            _ => StmtKind::Other,
        },
        NodeEnum::VariableSetStmt(v) => {
            let value = match VariableSetKind::try_from(v.kind) {
                Ok(VariableSetKind::VarSetValue) => Some(
                    v.args
                        .iter()
                        .filter_map(const_text)
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                _ => None,
            };
            StmtKind::Set {
                name: v.name.to_ascii_lowercase(),
                value,
                local: v.is_local,
            }
        }
        NodeEnum::CreateStmt(c) => {
            let mut columns = Vec::new();
            let mut constraints = Vec::new();
            for elt in &c.table_elts {
                match elt.node.as_ref() {
                    Some(NodeEnum::ColumnDef(col)) => columns.push(column(col)),
                    Some(NodeEnum::Constraint(con)) => {
                        if let Some(spec) = constraint(con) {
                            constraints.push(spec);
                        }
                    }
                    _ => {}
                }
            }
            StmtKind::CreateTable {
                table: table_name(c.relation.as_ref()),
                columns,
                constraints,
            }
        }
        NodeEnum::AlterTableStmt(a) if a.objtype == ObjectType::ObjectTable as i32 => {
            StmtKind::AlterTable {
                table: table_name(a.relation.as_ref()),
                actions: a
                    .cmds
                    .iter()
                    .filter_map(|c| match c.node.as_ref()? {
                        NodeEnum::AlterTableCmd(cmd) => Some(alter_action(cmd)),
                        _ => None,
                    })
                    .collect(),
            }
        }
        NodeEnum::IndexStmt(i) => StmtKind::CreateIndex {
            name: (!i.idxname.is_empty()).then(|| i.idxname.clone()),
            table: table_name(i.relation.as_ref()),
            concurrently: i.concurrent,
            unique: i.unique,
        },
        NodeEnum::DropStmt(d) => {
            let names = || {
                d.objects
                    .iter()
                    .map(|o| match o.node.as_ref() {
                        Some(NodeEnum::List(l)) => dotted_name(&l.items),
                        _ => String::new(),
                    })
                    .collect::<Vec<_>>()
            };
            match ObjectType::try_from(d.remove_type) {
                Ok(ObjectType::ObjectIndex) => StmtKind::DropIndex {
                    names: names(),
                    concurrently: d.concurrent,
                },
                Ok(ObjectType::ObjectTable) => StmtKind::DropTable {
                    tables: names()
                        .into_iter()
                        .map(|display| TableName {
                            name: display.rsplit('.').next().unwrap_or_default().to_string(),
                            display,
                        })
                        .collect(),
                },
                _ => StmtKind::Other,
            }
        }
        NodeEnum::RenameStmt(r) => match ObjectType::try_from(r.rename_type) {
            Ok(ObjectType::ObjectTable) => StmtKind::RenameTable {
                table: table_name(r.relation.as_ref()),
                to: r.newname.clone(),
            },
            Ok(ObjectType::ObjectColumn) if r.relation_type == ObjectType::ObjectTable as i32 => {
                StmtKind::RenameColumn {
                    table: table_name(r.relation.as_ref()),
                    column: r.subname.clone(),
                    to: r.newname.clone(),
                }
            }
            Ok(ObjectType::ObjectType | ObjectType::ObjectDomain) => StmtKind::RenameType {
                name: match r.object.as_deref().and_then(|o| o.node.as_ref()) {
                    Some(NodeEnum::List(l)) => dotted_name(&l.items),
                    Some(NodeEnum::TypeName(t)) => dotted_name(&t.names),
                    _ => String::new(),
                },
                to: r.newname.clone(),
            },
            _ => StmtKind::Other,
        },
        NodeEnum::ReindexStmt(r) => StmtKind::Reindex {
            index: r.kind == ReindexObjectType::ReindexObjectIndex as i32,
            target: match ReindexObjectType::try_from(r.kind) {
                Ok(
                    ReindexObjectType::ReindexObjectIndex | ReindexObjectType::ReindexObjectTable,
                ) => table_name(r.relation.as_ref()).display,
                _ => r.name.clone(),
            },
            concurrently: has_option(&r.params, "concurrently"),
        },
        NodeEnum::UpdateStmt(u) => StmtKind::Update {
            table: table_name(u.relation.as_ref()),
            alias: alias(u.relation.as_ref()),
            has_where: u.where_clause.is_some(),
            filters: filters(u.where_clause.as_deref()),
            where_span: None,
        },
        NodeEnum::DeleteStmt(d) => StmtKind::Delete {
            table: table_name(d.relation.as_ref()),
            alias: alias(d.relation.as_ref()),
            has_where: d.where_clause.is_some(),
            filters: filters(d.where_clause.as_deref()),
            where_span: None,
        },
        NodeEnum::AlterEnumStmt(e) if !e.old_val.is_empty() => StmtKind::RenameEnumValue {
            type_name: dotted_name(&e.type_name),
            from: e.old_val.clone(),
            to: e.new_val.clone(),
        },
        NodeEnum::CreateEnumStmt(e) => StmtKind::CreateType {
            name: last_name(&e.type_name),
        },
        NodeEnum::CreateRangeStmt(r) => StmtKind::CreateType {
            name: last_name(&r.type_name),
        },
        NodeEnum::CreateDomainStmt(d) => StmtKind::CreateType {
            name: last_name(&d.domainname),
        },
        NodeEnum::CompositeTypeStmt(c) => StmtKind::CreateType {
            name: table_name(c.typevar.as_ref()).name,
        },
        NodeEnum::TruncateStmt(t) => StmtKind::Truncate {
            tables: node_tables(&t.relations),
            cascade: t.behavior == DropBehavior::DropCascade as i32,
        },
        NodeEnum::VacuumStmt(v) if v.is_vacuumcmd => StmtKind::Vacuum {
            full: has_option(&v.options, "full"),
            tables: node_tables(&v.rels),
        },
        NodeEnum::DoStmt(d) => StmtKind::Routine {
            kind: RoutineKind::Do,
            language: def_string(&d.args, "language").unwrap_or_else(|| "plpgsql".into()),
        },
        NodeEnum::CreateFunctionStmt(f) => StmtKind::Routine {
            kind: RoutineKind::Function,
            language: def_string(&f.options, "language").unwrap_or_else(|| "sql".into()),
        },
        NodeEnum::ClusterStmt(c) => StmtKind::Cluster {
            table: c.relation.as_ref().map(|r| table_name(Some(r))),
        },
        _ => StmtKind::Other,
    }
}

fn alias(rv: Option<&protobuf::RangeVar>) -> Option<String> {
    rv?.alias.as_ref().map(|a| a.aliasname.clone())
}

/// A type as `format_type` prints it (`character varying(255)`, `numeric(10,2)`, `text[]`),
/// read with the grammar as a cast's target.
pub fn type_spec_of(text: &str) -> Option<TypeSpec> {
    match tree::select_expression(&format!("NULL::{text}"))? {
        NodeEnum::TypeCast(cast) => Some(type_spec(cast.type_name.as_ref())),
        _ => None,
    }
}

fn type_spec(t: Option<&protobuf::TypeName>) -> TypeSpec {
    let Some(t) = t else {
        return TypeSpec::default();
    };
    TypeSpec {
        name: last_name(&t.names),
        mods: t
            .typmods
            .iter()
            .filter_map(|m| match m.node.as_ref()? {
                NodeEnum::AConst(c) => match c.val.as_ref()? {
                    a_const::Val::Ival(i) => Some(i64::from(i.ival)),
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        array: !t.array_bounds.is_empty(),
    }
}

fn column(c: &protobuf::ColumnDef) -> ColumnSpec {
    let mut spec = ColumnSpec {
        name: c.colname.clone(),
        ty: type_spec(c.type_name.as_ref()),
        not_null: c.is_not_null,
        default: c.raw_default.as_deref().map(default_kind),
        default_sql: c.raw_default.as_deref().and_then(tree::expr),
        primary_key: false,
        generated: false,
        identity: !c.identity.is_empty(),
        constraints: Vec::new(),
    };
    for con in &c.constraints {
        let Some(NodeEnum::Constraint(con)) = con.node.as_ref() else {
            continue;
        };
        match ConstrType::try_from(con.contype) {
            Ok(ConstrType::ConstrNotnull) => spec.not_null = true,
            Ok(ConstrType::ConstrDefault) => {
                spec.default = con.raw_expr.as_deref().map(default_kind);
                spec.default_sql = con.raw_expr.as_deref().and_then(tree::expr);
            }
            Ok(ConstrType::ConstrIdentity) => spec.identity = true,
            Ok(ConstrType::ConstrGenerated) => spec.generated = true,
            Ok(ConstrType::ConstrPrimary) => {
                spec.primary_key = true;
                spec.not_null = true;
            }
            _ => {
                if let Some(c) = constraint(con) {
                    spec.constraints.push(c);
                }
            }
        }
    }
    spec
}

/// Whether a default expression calls a volatile function anywhere in it.
fn default_kind(expr: &Node) -> DefaultKind {
    let volatile = tree::nodes_of_kind(expr, "FuncCall")
        .into_iter()
        .find_map(|call| {
            let name = tree::json_last_name(&call["funcname"])?.to_ascii_lowercase();
            VOLATILE_FUNCTIONS.contains(&name.as_str()).then_some(name)
        });
    match volatile {
        Some(name) => DefaultKind::Volatile(name),
        None => DefaultKind::NonVolatile,
    }
}

fn constraint(c: &protobuf::Constraint) -> Option<ConstraintSpec> {
    let kind = match ConstrType::try_from(c.contype).ok()? {
        ConstrType::ConstrCheck => ConstraintKind::Check,
        ConstrType::ConstrForeign => ConstraintKind::ForeignKey,
        ConstrType::ConstrUnique => ConstraintKind::Unique,
        ConstrType::ConstrPrimary => ConstraintKind::PrimaryKey,
        ConstrType::ConstrExclusion => ConstraintKind::Exclusion,
        _ => return None,
    };
    let not_null_of = match c.raw_expr.as_deref().and_then(|e| e.node.as_ref()) {
        Some(NodeEnum::NullTest(t))
            if t.nulltesttype == protobuf::NullTestType::IsNotNull as i32 =>
        {
            match t.arg.as_deref().and_then(|a| a.node.as_ref()) {
                Some(NodeEnum::ColumnRef(r)) => Some(last_name(&r.fields)),
                _ => None,
            }
        }
        _ => None,
    };
    Some(ConstraintSpec {
        kind,
        name: (!c.conname.is_empty()).then(|| c.conname.clone()),
        not_valid: c.skip_validation,
        using_index: (!c.indexname.is_empty()).then(|| c.indexname.clone()),
        columns: tree::strings(&c.keys),
        not_null_of,
        references: c
            .pktable
            .as_ref()
            .map(|rv| (table_name(Some(rv)), tree::strings(&c.pk_attrs))),
        expr: match c.raw_expr.as_deref() {
            Some(e) => tree::expr(e),
            None if !c.fk_attrs.is_empty() => Some(tree::strings(&c.fk_attrs).join(", ")),
            None => None,
        },
        as_table_constraint: None,
    })
}

/// An inline constraint of column `column` written as a table constraint: deparsed as
/// `ALTER TABLE x ADD <constraint>` from a copy with the column as its key, without its name.
fn as_table_constraint(column: &str, c: &protobuf::Constraint) -> Option<String> {
    let mut c = c.clone();
    c.conname.clear();
    c.skip_validation = false;
    c.initially_valid = true;
    let key = || Node {
        node: Some(NodeEnum::String(protobuf::String {
            sval: column.to_string(),
        })),
    };
    match ConstrType::try_from(c.contype).ok()? {
        ConstrType::ConstrForeign => c.fk_attrs = vec![key()],
        ConstrType::ConstrCheck => {}
        _ => return None,
    }
    let cmd = protobuf::AlterTableCmd {
        subtype: AlterTableType::AtAddConstraint as i32,
        def: Some(Box::new(Node {
            node: Some(NodeEnum::Constraint(Box::new(c))),
        })),
        behavior: DropBehavior::DropRestrict as i32,
        ..Default::default()
    };
    let stmt = protobuf::AlterTableStmt {
        relation: Some(protobuf::RangeVar {
            relname: "x".into(),
            inh: true,
            relpersistence: "p".into(),
            ..Default::default()
        }),
        cmds: vec![Node {
            node: Some(NodeEnum::AlterTableCmd(Box::new(cmd))),
        }],
        objtype: ObjectType::ObjectTable as i32,
        missing_ok: false,
    };
    tree::statement(&NodeEnum::AlterTableStmt(stmt))?
        .strip_prefix("ALTER TABLE x ADD ")
        .map(str::to_string)
}

/// The top-level AND terms of a WHERE clause.
fn filters(clause: Option<&Node>) -> Vec<Filter> {
    fn column(n: Option<&Node>) -> Option<String> {
        match n?.node.as_ref()? {
            NodeEnum::ColumnRef(r) => Some(last_name(&r.fields)),
            _ => None,
        }
    }
    /// The relation a qualified column reference names (`o` of `o.id`).
    fn qualifier(n: Option<&Node>) -> Option<String> {
        match n?.node.as_ref()? {
            NodeEnum::ColumnRef(r) if r.fields.len() >= 2 => {
                string_of(&r.fields[r.fields.len() - 2]).map(str::to_string)
            }
            _ => None,
        }
    }
    fn true_const(n: &Node) -> bool {
        matches!(n.node.as_ref(), Some(NodeEnum::AConst(c))
            if matches!(c.val, Some(a_const::Val::Boolval(protobuf::Boolean { boolval: true }))))
    }
    fn walk(n: &Node, out: &mut Vec<Filter>) {
        match n.node.as_ref() {
            Some(NodeEnum::BoolExpr(b)) if b.boolop == protobuf::BoolExprType::AndExpr as i32 => {
                for arg in &b.args {
                    walk(arg, out);
                }
            }
            Some(NodeEnum::NullTest(t))
                if t.nulltesttype == protobuf::NullTestType::IsNull as i32 =>
            {
                out.push(match column(t.arg.as_deref()) {
                    Some(column) => Filter::IsNull { column },
                    None => Filter::Other,
                });
            }
            Some(NodeEnum::AExpr(e))
                if e.kind == protobuf::AExprKind::AexprOp as i32 && last_name(&e.name) == "=" =>
            {
                let (l, r) = (e.lexpr.as_deref(), e.rexpr.as_deref());
                // A join condition names two relations: `orders.account_id = accounts.id`.
                // `a = b` within one table selects some rows only.
                let joins = match (qualifier(l), qualifier(r)) {
                    (Some(a), Some(b)) => a != b,
                    _ => false,
                };
                out.push(if joins {
                    Filter::ColumnsEqual
                } else {
                    match (l.and_then(const_text), r.and_then(const_text)) {
                        (Some(a), Some(b)) if a == b => Filter::AlwaysTrue,
                        _ => Filter::Other,
                    }
                });
            }
            _ if true_const(n) => out.push(Filter::AlwaysTrue),
            _ => out.push(Filter::Other),
        }
    }
    let mut out = Vec::new();
    if let Some(n) = clause {
        walk(n, &mut out);
    }
    out
}

fn alter_action(cmd: &protobuf::AlterTableCmd) -> AlterAction {
    let def = cmd.def.as_deref().and_then(|d| d.node.as_ref());
    let name = || cmd.name.clone();
    match AlterTableType::try_from(cmd.subtype) {
        Ok(AlterTableType::AtAddColumn) => match def {
            Some(NodeEnum::ColumnDef(c)) => {
                let mut spec = column(c);
                // What a rule needs to suggest the constraint on its own, NOT VALID.
                let inline = c.constraints.iter().filter_map(|n| match n.node.as_ref() {
                    Some(NodeEnum::Constraint(k))
                        if matches!(
                            ConstrType::try_from(k.contype),
                            Ok(ConstrType::ConstrForeign | ConstrType::ConstrCheck)
                        ) =>
                    {
                        Some(k)
                    }
                    _ => None,
                });
                for (spec, k) in spec
                    .constraints
                    .iter_mut()
                    .filter(|s| {
                        matches!(s.kind, ConstraintKind::ForeignKey | ConstraintKind::Check)
                    })
                    .zip(inline)
                {
                    spec.as_table_constraint = as_table_constraint(&c.colname, k);
                }
                AlterAction::AddColumn(spec)
            }
            _ => AlterAction::Other,
        },
        Ok(AlterTableType::AtDropColumn) => AlterAction::DropColumn { column: name() },
        Ok(AlterTableType::AtAlterColumnType) => match def {
            Some(NodeEnum::ColumnDef(c)) => AlterAction::AlterType {
                column: name(),
                ty: type_spec(c.type_name.as_ref()),
            },
            _ => AlterAction::Other,
        },
        Ok(AlterTableType::AtSetNotNull) => AlterAction::SetNotNull { column: name() },
        Ok(AlterTableType::AtDropNotNull) => AlterAction::DropNotNull { column: name() },
        Ok(AlterTableType::AtColumnDefault) if def.is_none() => {
            AlterAction::DropDefault { column: name() }
        }
        Ok(AlterTableType::AtColumnDefault) => AlterAction::SetDefault { column: name() },
        Ok(AlterTableType::AtAddConstraint) => match def {
            Some(NodeEnum::Constraint(c)) => {
                constraint(c).map_or(AlterAction::Other, AlterAction::AddConstraint)
            }
            _ => AlterAction::Other,
        },
        Ok(AlterTableType::AtValidateConstraint) => {
            AlterAction::ValidateConstraint { name: name() }
        }
        Ok(AlterTableType::AtDetachPartition) => match def {
            Some(NodeEnum::PartitionCmd(p)) => AlterAction::DetachPartition {
                concurrently: p.concurrent,
            },
            _ => AlterAction::DetachPartition {
                concurrently: false,
            },
        },
        Ok(AlterTableType::AtDetachPartitionFinalize) => {
            AlterAction::DetachPartition { concurrently: true }
        }
        Ok(AlterTableType::AtAttachPartition) => AlterAction::AttachPartition,
        _ => AlterAction::Other,
    }
}
