//! The names PostgreSQL gives what a statement leaves unnamed (`users_email_key`,
//! `users_pkey`, `users_email_idx`), so a converted migration creates the same names the SQL
//! would have: tandem's operations need a name for every constraint and index.

use tandem_model::MAX_IDENT_BYTES;

/// PostgreSQL's `makeObjectName`: `name1_name2_label`, with the longer of `name1` and `name2`
/// cut, a character at a time, until the whole fits in 63 bytes.
pub fn object_name(name1: &str, name2: Option<&str>, label: &str) -> String {
    let mut overhead = label.len() + 1;
    if name2.is_some() {
        overhead += 1;
    }
    let avail = MAX_IDENT_BYTES.saturating_sub(overhead);
    let mut n1 = name1.len();
    let mut n2 = name2.map_or(0, str::len);
    while n1 + n2 > avail {
        if n1 > n2 {
            n1 -= 1;
        } else {
            n2 -= 1;
        }
    }
    let clip = |s: &str, mut n: usize| {
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        s[..n].to_string()
    };
    let mut out = clip(name1, n1);
    if let Some(n) = name2 {
        out.push('_');
        out.push_str(&clip(n, n2));
    }
    out.push('_');
    out.push_str(label);
    out
}

/// The column part of an index or constraint name: the columns joined by `_`, as PostgreSQL's
/// `ChooseIndexNameAddition` writes them (cut at 63 bytes).
pub fn columns_part(columns: &[String]) -> String {
    let mut out = String::new();
    for c in columns {
        if !out.is_empty() {
            out.push('_');
        }
        out.push_str(c);
        if out.len() >= MAX_IDENT_BYTES {
            break;
        }
    }
    out
}

/// Names already taken in the file, so a second unnamed check on a table gets `_check1` as
/// PostgreSQL's `ChooseConstraintName` would give it.
#[derive(Debug, Default)]
pub struct Taken(std::collections::BTreeSet<String>);

impl Taken {
    pub fn choose(&mut self, name1: &str, name2: Option<&str>, label: &str) -> String {
        let mut pass = 0;
        loop {
            let l = if pass == 0 {
                label.to_string()
            } else {
                format!("{label}{pass}")
            };
            let name = object_name(name1, name2, &l);
            if self.0.insert(name.clone()) {
                return name;
            }
            pass += 1;
        }
    }

    pub fn take(&mut self, name: &str) {
        self.0.insert(name.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_postgres() {
        assert_eq!(
            object_name("users", Some("email"), "key"),
            "users_email_key"
        );
        assert_eq!(object_name("users", None, "pkey"), "users_pkey");
        let long = "a".repeat(40);
        let name = object_name(&long, Some(&"b".repeat(40)), "fkey");
        assert_eq!(name.len(), 63);
        assert!(name.starts_with(&"a".repeat(29)) && name.ends_with("_fkey"));
        let mut taken = Taken::default();
        assert_eq!(taken.choose("t", None, "check"), "t_check");
        assert_eq!(taken.choose("t", None, "check"), "t_check1");
    }
}
