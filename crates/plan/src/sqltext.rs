//! Just enough of SQL's lexical structure to rename column references in an expression or a
//! definition PostgreSQL printed (`pg_get_constraintdef`, `pg_get_indexdef`), and to tell which
//! names an expression mentions. Identifiers inside string literals, dollar quotes and comments
//! are left alone; so are qualified names (`users.id`), function names (`lower(`) and type names
//! after `::`.

use tandem_model::quote_ident;

#[derive(Debug, PartialEq)]
enum Token<'a> {
    /// An identifier with its folded name: unquoted names fold to lower case.
    Ident {
        text: &'a str,
        name: String,
    },
    Other(&'a str),
}

fn tokenize<'a>(sql: &'a str) -> Vec<Token<'a>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut other_start = 0;
    let flush = |out: &mut Vec<Token<'a>>, from: usize, to: usize| {
        if to > from {
            out.push(Token::Other(&sql[from..to]));
        }
    };
    while i < b.len() {
        let c = b[i];
        if c == b'\'' {
            // String literal ('' escapes a quote; E'' strings may escape with a backslash).
            let escapes = i > 0 && (b[i - 1] == b'E' || b[i - 1] == b'e');
            i += 1;
            while i < b.len() {
                if escapes && b[i] == b'\\' {
                    i += 2;
                    continue;
                }
                if b[i] == b'\'' {
                    if i + 1 < b.len() && b[i + 1] == b'\'' {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if c == b'$' && (i == 0 || !is_ident_char(b[i - 1])) {
            // Dollar quote $tag$...$tag$ (a `$1` parameter has no closing `$`).
            let tag_end = sql[i + 1..]
                .find(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                .map(|p| i + 1 + p);
            match tag_end {
                Some(e) if b[e] == b'$' => {
                    let tag = &sql[i..=e];
                    match sql[e + 1..].find(tag) {
                        Some(p) => i = e + 1 + p + tag.len(),
                        None => i = b.len(),
                    }
                }
                _ => i += 1,
            }
        } else if c == b'"' {
            flush(&mut out, other_start, i);
            let start = i;
            i += 1;
            let mut name = String::new();
            while i < b.len() {
                if b[i] == b'"' {
                    if b.get(i + 1) == Some(&b'"') {
                        name.push('"');
                        i += 2;
                        continue;
                    }
                    break;
                }
                let ch = sql[i..].chars().next().expect("in bounds");
                name.push(ch);
                i += ch.len_utf8();
            }
            i = (i + 1).min(b.len());
            out.push(Token::Ident {
                text: &sql[start..i],
                name,
            });
            other_start = i;
        } else if is_ident_start(c) && (i == 0 || !is_ident_char(b[i - 1])) {
            flush(&mut out, other_start, i);
            let start = i;
            while i < b.len() && is_ident_char(b[i]) {
                i += 1;
            }
            let text = &sql[start..i];
            out.push(Token::Ident {
                text,
                name: text.to_lowercase(),
            });
            other_start = i;
        } else {
            i += 1;
        }
    }
    flush(&mut out, other_start, b.len().min(i));
    out
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_char(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == b'$'
}

/// The punctuation around token `i`: what ends just before it and what starts just after it,
/// without the spaces.
fn neighbours<'a>(tokens: &[Token<'a>], i: usize) -> (&'a str, &'a str) {
    let before = match i.checked_sub(1).map(|p| &tokens[p]) {
        Some(Token::Other(s)) => s.trim_end(),
        _ => "",
    };
    let after = match tokens.get(i + 1) {
        Some(Token::Other(s)) => s.trim_start(),
        _ => "",
    };
    (before, after)
}

/// The identifiers of `sql` that can be column references, by index into the token list.
fn column_refs(tokens: &[Token<'_>]) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let Token::Ident { .. } = t else { continue };
        let (before, after) = neighbours(tokens, i);
        if before.ends_with('.') && !before.ends_with("..") {
            continue;
        }
        if before.ends_with("::") || after.starts_with('(') || after.starts_with('.') {
            continue;
        }
        out.push(i);
    }
    out
}

/// `sql` with every reference to a column in `renames` (old name → new name, as stored) replaced
/// by the quoted new name.
pub fn rename_columns(sql: &str, renames: &[(String, String)]) -> String {
    replace_columns(sql, |name| {
        renames
            .iter()
            .find(|(from, _)| from == name)
            .map(|(_, to)| quote_ident(to))
    })
}

/// `sql` with every column reference for which `replace` gives text replaced by that text.
pub fn replace_columns(sql: &str, replace: impl Fn(&str) -> Option<String>) -> String {
    let tokens = tokenize(sql);
    let refs = column_refs(&tokens);
    let mut out = String::with_capacity(sql.len());
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::Other(s) => out.push_str(s),
            Token::Ident { text, name } => match refs.contains(&i).then(|| replace(name)).flatten()
            {
                Some(to) => out.push_str(&to),
                None => out.push_str(text),
            },
        }
    }
    out
}

/// Whether `expr` may refer to the column `name` (as stored, case-sensitive).
pub fn mentions(expr: &str, name: &str) -> bool {
    let tokens = tokenize(expr);
    column_refs(&tokens)
        .into_iter()
        .any(|i| matches!(&tokens[i], Token::Ident { name: n, .. } if n == name))
}

/// The names a statement may refer to tables or columns by, folded as PostgreSQL folds them:
/// every identifier, bare or qualified, except function names (`lower(`) and type names after
/// `::`. Used to tell whether a normalized query (pg_stat_statements) may touch a table or a
/// column; string literals, dollar quotes and comments do not count.
pub fn relation_and_column_names(sql: &str) -> std::collections::BTreeSet<String> {
    let tokens = tokenize(sql);
    let mut out = std::collections::BTreeSet::new();
    for (i, t) in tokens.iter().enumerate() {
        let Token::Ident { name, .. } = t else {
            continue;
        };
        let (before, after) = neighbours(&tokens, i);
        // `INSERT INTO t (a, b)`: a table followed by its column list, not a function call.
        let after_into = i >= 2
            && before.is_empty()
            && matches!(&tokens[i - 2], Token::Ident { name, text } if name == "into" && !text.starts_with('"'));
        if before.ends_with("::") || (after.starts_with('(') && !after_into) {
            continue;
        }
        out.insert(name.clone());
    }
    out
}

/// The first word of a statement, lower case (`select`, `insert`, `create`...), skipping
/// comments and parentheses.
pub fn first_keyword(sql: &str) -> Option<String> {
    tokenize(sql).into_iter().find_map(|t| match t {
        Token::Ident { text, name } if !text.starts_with('"') => Some(name),
        _ => None,
    })
}

/// Whether `expr` is empty or just the column `name` itself: a change that copies nothing.
pub fn is_identity(expr: &str, name: &str) -> bool {
    let e = expr.trim();
    if e.is_empty() {
        return true;
    }
    let tokens = tokenize(e);
    matches!(tokens.as_slice(), [Token::Ident { name: n, .. }] if n == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(a: &str, b: &str) -> Vec<(String, String)> {
        vec![(a.to_string(), b.to_string())]
    }

    #[test]
    fn renames_references_only() {
        assert_eq!(
            rename_columns("CHECK ((length(title) > 3))", &r("title", "_new")),
            "CHECK ((length(\"_new\") > 3))"
        );
        assert_eq!(
            rename_columns(
                "title = 'title' AND posts.title <> \"title\" AND x::title IS NULL -- title",
                &r("title", "t2")
            ),
            "\"t2\" = 'title' AND posts.title <> \"t2\" AND x::title IS NULL -- title"
        );
        assert_eq!(
            rename_columns(
                "CREATE UNIQUE INDEX i ON public.t USING btree (\"Name\", b)",
                &r("Name", "x")
            ),
            "CREATE UNIQUE INDEX i ON public.t USING btree (\"x\", b)"
        );
        assert_eq!(
            rename_columns("$q$name$q$ || name", &r("name", "n")),
            "$q$name$q$ || \"n\""
        );
    }

    #[test]
    fn mentions_and_identity() {
        assert!(mentions(
            "SELECT CASE WHEN review IS NULL THEN 1 END",
            "review"
        ));
        assert!(!mentions("reviews.review_count", "review"));
        assert!(!mentions("'review'", "review"));
        assert!(mentions("\"Review\" || 1", "Review"));
        assert!(!mentions("Review || 1", "Review"));
        assert!(is_identity(" title ", "title"));
        assert!(is_identity("", "title"));
        assert!(is_identity("\"title\"", "title"));
        assert!(!is_identity("title || 'x'", "title"));
        assert!(!is_identity("Title", "Title"));
    }

    #[test]
    fn names_of_a_normalized_query() {
        let names = relation_and_column_names(
            "/* app */ SELECT u.legacy, lower(name)::text FROM public.users u WHERE note = 'legacy' AND id = $1",
        );
        for n in ["u", "legacy", "name", "public", "users", "note", "id"] {
            assert!(names.contains(n), "{n} in {names:?}");
        }
        assert!(!names.contains("lower") && !names.contains("text"));
        assert!(!relation_and_column_names("SELECT 'legacy' -- legacy").contains("legacy"));
        assert!(relation_and_column_names("UPDATE \"Users\" SET x = 1").contains("Users"));
        assert!(relation_and_column_names("INSERT INTO orders(id) VALUES ($1)").contains("orders"));
        assert_eq!(
            first_keyword("-- c\n (SELECT 1)").as_deref(),
            Some("select")
        );
        assert_eq!(
            first_keyword("WITH a AS (SELECT 1) SELECT * FROM a").as_deref(),
            Some("with")
        );
    }
}
