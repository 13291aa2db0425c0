//! Connection services (`service=` or PGSERVICE), looked up as libpq does: in PGSERVICEFILE or
//! `~/.pg_service.conf` first, then in `pg_service.conf` of PGSYSCONFDIR (by default
//! `/etc/postgresql-common`, where Debian's libpq looks). A service is an INI section of
//! `key=value` lines; the first file that defines it is the only one read for it.

use crate::connect::conninfo;
use crate::error::{Error, Result};
use std::path::PathBuf;

/// Where the system-wide service file lives when PGSYSCONFDIR is not set.
const DEFAULT_SYSCONFDIR: &str = "/etc/postgresql-common";

/// The files searched, in order.
pub(crate) fn files(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let user = match env("PGSERVICEFILE") {
        Some(f) => Some(PathBuf::from(f)),
        None => env("HOME").map(|h| PathBuf::from(h).join(".pg_service.conf")),
    };
    let system = PathBuf::from(env("PGSYSCONFDIR").unwrap_or_else(|| DEFAULT_SYSCONFDIR.into()))
        .join("pg_service.conf");
    user.into_iter().chain([system]).collect()
}

/// The settings of service `name` from the first of `files` that defines it.
pub(crate) fn lookup(name: &str, files: &[PathBuf]) -> Result<Vec<(String, String)>> {
    for file in files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        if let Some(pairs) = section(&text, name, file)? {
            return Ok(pairs);
        }
    }
    let searched: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    Err(Error::Connect(format!(
        "service {name:?} is not defined in {}; define it there as a [{name}] section, or set \
         PGSERVICEFILE to the file that defines it",
        searched.join(" or ")
    )))
}

/// The `key=value` lines of section `[name]`, or `None` when the file has no such section.
fn section(
    text: &str,
    name: &str,
    file: &std::path::Path,
) -> Result<Option<Vec<(String, String)>>> {
    let mut found: Option<Vec<(String, String)>> = None;
    let mut inside = false;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            if found.is_some() && inside {
                break;
            }
            inside = header.strip_suffix(']') == Some(name);
            if inside {
                found = Some(Vec::new());
            }
            continue;
        }
        if !inside {
            continue;
        }
        let at = || format!("{}:{}", file.display(), number + 1);
        let Some((key, value)) = line.split_once('=') else {
            return Err(Error::Connect(format!(
                "{}: expected key=value in service {name:?}",
                at()
            )));
        };
        let key = key.trim();
        if key == "service" {
            return Err(Error::Connect(format!(
                "{}: a service cannot name another service",
                at()
            )));
        }
        conninfo::check_keyword(key).map_err(|e| Error::Connect(format!("{}: {e}", at())))?;
        if let Some(pairs) = found.as_mut() {
            pairs.push((key.to_string(), value.trim().to_string()));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_found_by_name() {
        let text =
            "# services\n[other]\nhost=x\n\n[app]\nhost = db.example\nport=6432\n[later]\nport=1\n";
        let f = std::path::Path::new("pg_service.conf");
        assert_eq!(
            section(text, "app", f).unwrap(),
            Some(vec![
                ("host".to_string(), "db.example".to_string()),
                ("port".to_string(), "6432".to_string())
            ])
        );
        assert_eq!(section(text, "missing", f).unwrap(), None);
        let e = section("[app]\ncolour=blue\n", "app", f)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pg_service.conf:2") && e.contains("colour"),
            "{e}"
        );
    }

    #[test]
    fn the_user_file_comes_before_the_system_one() {
        let env = |k: &str| match k {
            "HOME" => Some("/home/u".to_string()),
            "PGSYSCONFDIR" => Some("/etc/pg".to_string()),
            _ => None,
        };
        assert_eq!(
            files(&env),
            vec![
                PathBuf::from("/home/u/.pg_service.conf"),
                PathBuf::from("/etc/pg/pg_service.conf")
            ]
        );
    }
}
