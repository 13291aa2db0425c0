//! The statements inside PL/pgSQL bodies (`DO $$ ... $$`, `CREATE FUNCTION ... LANGUAGE
//! plpgsql`): the SQL statements, `EXECUTE` of a constant string, and `COMMIT`/`ROLLBACK`, found
//! with PostgreSQL's own PL/pgSQL parser (`pg_query::parse_plpgsql`), each placed at its line in
//! the file and marked when it sits in a loop that never commits; and the statements of a
//! `LANGUAGE sql` function's string body.

use crate::model::*;
use crate::parse::{self, Comment, Parsed};
use pg_query::NodeEnum;
use serde_json::Value;

/// The statements of one routine's body, with spans into the file.
#[derive(Debug, Clone)]
pub struct Body {
    pub kind: RoutineKind,
    /// The statements, with spans into the file, except those of `executed` ones.
    pub parsed: Parsed,
    /// Parallel to the statements: for a statement of an `EXECUTE`'d string that is not in the
    /// file as written, the text its spans point into and the file offset to report it at.
    pub executed: Vec<Option<(String, usize)>>,
}

/// A statement the PL/pgSQL parser found, before it is parsed as SQL.
struct Piece {
    lineno: usize,
    what: PieceKind,
    loop_without_commit: bool,
}

enum PieceKind {
    /// SQL as written in the body.
    Sql(String),
    /// The string an `EXECUTE` runs, unquoted: not where it sits in the file.
    Executed(String),
    Commit,
    Rollback,
}

/// The body of `stmt` when it is a PL/pgSQL routine whose body the parser reads, or a SQL
/// function with a string body. A body the
/// PL/pgSQL parser refuses (it needs the catalog for `%ROWTYPE` and the like) is left unread:
/// PostgreSQL checks it when the routine is created or run.
pub fn body(source: &str, stmt: &Statement) -> Option<Body> {
    let StmtKind::Routine { kind, language } = &stmt.kind else {
        return None;
    };
    let text = &source[stmt.span.start..stmt.span.end];
    let (body, at) = body_text(text)?;
    let body_start = stmt.span.start + at;
    let verbatim = source[body_start..].starts_with(&body);
    let body_end = body_start + if verbatim { body.len() } else { 0 };
    let mut pieces = Vec::new();
    match language.as_str() {
        "plpgsql" => walk(&pg_query::parse_plpgsql(text).ok()?, None, &mut pieces),
        // A SQL function's body is SQL statements, run in the caller's transaction.
        "sql" if *kind == RoutineKind::Function => pieces.push(Piece {
            lineno: 1,
            what: PieceKind::Sql(body.clone()),
            loop_without_commit: false,
        }),
        _ => return None,
    }

    let mut statements = Vec::new();
    let mut executed = Vec::new();
    for piece in pieces {
        let line_at = line_offset(source, body_start, piece.lineno);
        let indent = source[line_at..]
            .find(|c: char| !c.is_whitespace())
            .map_or(line_at, |i| line_at + i);
        let at_line = |kind: StmtKind| Statement {
            span: Span {
                start: indent,
                end: source[indent..]
                    .find('\n')
                    .map_or(source.len(), |i| indent + i),
            },
            kind,
            long_identifiers: Vec::new(),
            in_body: None,
            clauses: Vec::new(),
        };
        let (mut found, text) = match piece.what {
            PieceKind::Commit => (vec![at_line(StmtKind::Commit)], None),
            PieceKind::Rollback => (vec![at_line(StmtKind::Rollback)], None),
            PieceKind::Sql(sql) | PieceKind::Executed(sql) => {
                // SQL written in the body is found verbatim from its line on; an EXECUTE'd
                // string too unless quoting changed it.
                let shift = (verbatim && line_at <= body_end)
                    .then(|| source[line_at..body_end].find(&sql))
                    .flatten()
                    .map(|i| line_at + i);
                // Parsed where it sits, so every span of the statement (its clauses, its WHERE)
                // points into the file; a string that is not in the file is parsed as text of
                // its own, and reported at the EXECUTE.
                let padded = format!("{}{sql}", " ".repeat(shift.unwrap_or(indent)));
                let Ok(inner) = parse::parse(&padded) else {
                    continue;
                };
                let text = shift.is_none().then_some(padded);
                (inner.statements, text)
            }
        };
        for s in &mut found {
            s.in_body = Some(InBody {
                routine: *kind,
                loop_without_commit: piece.loop_without_commit,
            });
            executed.push(text.clone().map(|t| (t, indent)));
        }
        statements.extend(found);
    }
    let comments = if verbatim {
        parse::comments(&source[body_start..body_end])
            .into_iter()
            .map(|c| Comment {
                span: Span {
                    start: c.span.start + body_start,
                    end: c.span.end + body_start,
                },
                text: c.text,
            })
            .collect()
    } else {
        Vec::new()
    };
    Some(Body {
        kind: *kind,
        parsed: Parsed {
            statements,
            comments,
        },
        executed,
    })
}

/// The body string of a DO or CREATE FUNCTION statement and the byte offset in `text` where it
/// starts (after its opening quote).
fn body_text(text: &str) -> Option<(String, usize)> {
    let node = crate::tree::first_statement(text)?;
    let options = match &node {
        NodeEnum::DoStmt(d) => &d.args,
        NodeEnum::CreateFunctionStmt(f) => &f.options,
        _ => return None,
    };
    let found = crate::tree::def_elems(options).find_map(|d| {
        if d.defname != "as" {
            return None;
        }
        let body = match d.arg.as_deref()?.node.as_ref()? {
            NodeEnum::String(s) => s.sval.clone(),
            NodeEnum::List(l) => crate::tree::string_of(l.items.first()?)?.to_string(),
            _ => return None,
        };
        let at = usize::try_from(d.arg_location).ok()?;
        let quote = text.get(at..)?;
        let open = if let Some(tag) = quote.strip_prefix('$') {
            tag.find('$')? + 2
        } else {
            quote.find('\'')? + 1
        };
        Some((body, at + open))
    });
    found
}

/// The byte offset of line `lineno` of a body that starts at `body_start` (line 1 is the rest
/// of the line the body opens on, as PL/pgSQL counts).
fn line_offset(source: &str, body_start: usize, lineno: usize) -> usize {
    let mut at = body_start;
    for _ in 1..lineno.max(1) {
        match source[at..].find('\n') {
            Some(i) => at += i + 1,
            None => break,
        }
    }
    at
}

const LOOPS: &[&str] = &[
    "PLpgSQL_stmt_loop",
    "PLpgSQL_stmt_while",
    "PLpgSQL_stmt_fori",
    "PLpgSQL_stmt_fors",
    "PLpgSQL_stmt_forc",
    "PLpgSQL_stmt_foreach_a",
    "PLpgSQL_stmt_dynfors",
];

/// Collects the pieces in source order. `in_loop` is `Some(commits)` inside a loop, with
/// whether that loop's body commits.
fn walk(v: &Value, in_loop: Option<bool>, out: &mut Vec<Piece>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| walk(i, in_loop, out)),
        Value::Object(map) => {
            for (key, inner) in map {
                let lineno = inner["lineno"].as_u64().unwrap_or(1) as usize;
                let piece = |what| Piece {
                    lineno,
                    what,
                    loop_without_commit: in_loop == Some(false),
                };
                match key.as_str() {
                    "PLpgSQL_stmt_execsql" => {
                        if let Some(q) = inner.pointer("/sqlstmt/PLpgSQL_expr/query") {
                            out.push(piece(PieceKind::Sql(q.as_str().unwrap_or("").into())));
                        }
                    }
                    "PLpgSQL_stmt_dynexecute" => {
                        let expr = inner.pointer("/query/PLpgSQL_expr/query");
                        if let Some(sql) = expr.and_then(Value::as_str).and_then(constant_string) {
                            out.push(piece(PieceKind::Executed(sql)));
                        }
                    }
                    "PLpgSQL_stmt_commit" => out.push(piece(PieceKind::Commit)),
                    "PLpgSQL_stmt_rollback" => out.push(piece(PieceKind::Rollback)),
                    k if LOOPS.contains(&k) => {
                        walk(inner, Some(contains_key(inner, "PLpgSQL_stmt_commit")), out)
                    }
                    _ => walk(inner, in_loop, out),
                }
            }
        }
        _ => {}
    }
}

fn contains_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|i| contains_key(i, key)),
        Value::Object(map) => map
            .iter()
            .any(|(k, inner)| k == key || contains_key(inner, key)),
        _ => false,
    }
}

/// The value of an expression that is one string constant (`'CREATE INDEX ...'`, `$q$...$q$`).
fn constant_string(expr: &str) -> Option<String> {
    crate::tree::string_constant(&crate::tree::select_expression(expr)?)
}
