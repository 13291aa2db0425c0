//! The one place identifiers and literals are quoted for SQL, and where over-long names are
//! shortened deterministically. Nothing else in tandem pastes a name into SQL.

/// PostgreSQL truncates identifiers to NAMEDATALEN-1 bytes.
pub const MAX_IDENT_BYTES: usize = 63;

/// Quotes an identifier: always double-quoted, embedded quotes doubled, so reserved words,
/// upper case, spaces and unicode all survive and nothing can be injected.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `schema.name`, both quoted.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// Quotes a string literal. Backslashes switch to the `E''` form so the literal means the same
/// whatever `standard_conforming_strings` says.
pub fn quote_literal(value: &str) -> String {
    let escaped = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", escaped.replace('\\', "\\\\"))
    } else {
        format!("'{escaped}'")
    }
}

/// Returns `name` unchanged when it fits in 63 bytes; otherwise a prefix cut on a character
/// boundary followed by `_` and 8 hex digits of a hash of the whole name, so two long names that
/// share a prefix never collide and the same name always shortens the same way.
pub fn shorten_name(name: &str) -> String {
    if name.len() <= MAX_IDENT_BYTES {
        return name.to_string();
    }
    let suffix = format!("_{:08x}", fnv1a32(name.as_bytes()));
    let mut cut = MAX_IDENT_BYTES - suffix.len();
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}", &name[..cut], suffix)
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("Select"), "\"Select\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b'"), "E'a\\\\b'''");
        assert_eq!(qualified("public", "t"), "\"public\".\"t\"");
    }

    #[test]
    fn shortening_is_deterministic_and_distinct() {
        assert_eq!(shorten_name("short"), "short");
        let a = format!("{}_a", "x".repeat(70));
        let b = format!("{}_b", "x".repeat(70));
        assert_eq!(shorten_name(&a).len(), 63);
        assert_ne!(shorten_name(&a), shorten_name(&b));
        assert_eq!(shorten_name(&a), shorten_name(&a));
        // Multi-byte characters are never split.
        let u = "é".repeat(40);
        assert!(shorten_name(&u).len() <= 63);
    }
}
