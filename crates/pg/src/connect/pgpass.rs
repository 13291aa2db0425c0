//! The password file (`passfile`, PGPASSFILE or `~/.pgpass`), read with libpq's rules: lines of
//! `host:port:database:user:password`, `*` matching anything, `\` escaping `:` and `\`, the
//! first matching line winning, a socket matching `localhost`, and a file that group or others
//! may read ignored.

use std::path::{Path, PathBuf};

/// What looking in the password file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    Found(String),
    /// The file exists but no line matches.
    NoMatch,
    /// There is no such file (or it cannot be read).
    Missing,
    /// libpq ignores a password file others may read; so does tandem, and the connection
    /// error says why.
    TooOpen {
        mode: u32,
    },
}

/// The file libpq would read: the `passfile` setting, else `~/.pgpass`.
pub(crate) fn path(passfile: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    match passfile {
        Some(p) => Some(PathBuf::from(p)),
        None => home.map(|h| Path::new(h).join(".pgpass")),
    }
}

/// The password for one endpoint. `host` is the host name as given, or `None` for a Unix
/// socket, which libpq matches as `localhost`.
pub(crate) fn lookup(
    file: &Path,
    host: Option<&str>,
    port: u16,
    dbname: &str,
    user: &str,
) -> Lookup {
    let Ok(meta) = std::fs::metadata(file) else {
        return Lookup::Missing;
    };
    if !meta.is_file() {
        return Lookup::Missing;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Lookup::TooOpen { mode };
        }
    }
    let Ok(text) = std::fs::read_to_string(file) else {
        return Lookup::Missing;
    };
    match find(
        &text,
        host.unwrap_or("localhost"),
        &port.to_string(),
        dbname,
        user,
    ) {
        Some(p) => Lookup::Found(p),
        None => Lookup::NoMatch,
    }
}

/// The password of the first line whose four fields match.
fn find(text: &str, host: &str, port: &str, dbname: &str, user: &str) -> Option<String> {
    let wanted = [host, port, dbname, user];
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(fields)
        .find(|f| {
            f[..4]
                .iter()
                .zip(wanted)
                .all(|(field, want)| field == "*" || field == want)
        })
        .map(|mut f| f.swap_remove(4))
}

/// A line's five fields, unescaped; `None` for a line with fewer. The password is the rest of
/// the line, so an unescaped `:` in it stays.
fn fields(line: &str) -> Option<Vec<String>> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.last_mut()?.extend(chars.next()),
            ':' if out.len() < 5 => out.push(String::new()),
            c => out.last_mut()?.push(c),
        }
    }
    (out.len() == 5).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_line_wins() {
        let text = "# comment\n\
                    db.example:5432:app:alice:first\n\
                    *:*:app:alice:second\n\
                    localhost:5433:*:*:local\n\
                    h\\:x:*:*:*:pa\\:ss:word\n";
        assert_eq!(
            find(text, "db.example", "5432", "app", "alice").as_deref(),
            Some("first")
        );
        assert_eq!(
            find(text, "other", "1", "app", "alice").as_deref(),
            Some("second")
        );
        assert_eq!(
            find(text, "localhost", "5433", "x", "bob").as_deref(),
            Some("local")
        );
        assert_eq!(
            find(text, "h:x", "1", "d", "u").as_deref(),
            Some("pa:ss:word")
        );
        assert_eq!(find(text, "other", "1", "app", "bob"), None);
    }

    #[test]
    fn a_file_others_can_read_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(&file, "*:*:*:*:secret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            lookup(&file, None, 5432, "d", "u"),
            Lookup::TooOpen { mode: 0o644 }
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            lookup(&file, None, 5432, "d", "u"),
            Lookup::Found("secret".into())
        );
        assert_eq!(
            lookup(&dir.path().join("none"), None, 5432, "d", "u"),
            Lookup::Missing
        );
    }
}
