//! T027: identifiers longer than 63 bytes, which PostgreSQL truncates silently.

use super::{Check, Hit, Level, Rule};
use crate::parse::MAX_IDENTIFIER_BYTES;
use crate::Cx;

pub const RULE: Rule = Rule {
    id: "T027",
    name: "identifier-too-long",
    level: Level::Error,
    summary: "Identifiers longer than 63 bytes are truncated without an error.",
    explanation: "PostgreSQL keeps only the first 63 bytes of an identifier and says so with a NOTICE, not an error. Two long names that share their first 63 bytes then collide, and later statements (or the application) that use the full name refer to an object that does not exist under it. No lock is involved; the migration simply does something other than what it says.",
    safe_alternative: "CREATE INDEX CONCURRENTLY users_email_lower_idx ON users (lower(email));",
    tandem: Some("# tandem shortens the names it generates itself, with a hash, to at most 63 bytes\noperations:\n  - create_index:\n      name: users_email_lower_idx\n      table: users\n      columns: [{column: email}]"),
    setup: crate::rules::USERS,
    bad: "CREATE INDEX CONCURRENTLY index_on_users_lower_email_for_the_case_insensitive_login_lookup ON users (lower(email));",
    good: "CREATE INDEX CONCURRENTLY users_email_lower_idx ON users (lower(email));",
    bad_fails_with: None,
    check: Check::Clauses(check),
};

fn check(cx: &Cx) -> Vec<Hit> {
    let mut seen = Vec::new();
    let mut hits = Vec::new();
    for name in &cx.stmt.long_identifiers {
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        let kept: String = name
            .char_indices()
            .take_while(|(i, c)| i + c.len_utf8() <= MAX_IDENTIFIER_BYTES)
            .map(|(_, c)| c)
            .collect();
        let short = tandem_model::ident::shorten_name(name);
        hits.push(
            Hit::new(format!(
                "identifier {name:?} is {} bytes long; PostgreSQL keeps only {kept:?}",
                name.len()
            ))
            .at(cx.text().find(name.as_str()).map(|i| {
                // At the opening quote of a quoted name.
                let i = if cx.text()[..i].ends_with('"') {
                    i - 1
                } else {
                    i
                };
                cx.stmt.span.start + i
            }))
            .instead(format!(
                "-- a name of at most 63 bytes, chosen by you or shortened as tandem does:\n{};",
                cx.text().replace(name.as_str(), &short)
            )),
        );
    }
    hits
}
