//! `tandem create NAME`: a new migration file skeleton in the migrations directory, numbered
//! after the last one in the style the directory already uses (`03_`, `0004-`, a
//! `20240131120000_` timestamp), `0001_` in an empty directory, as pgroll's `pull
//! --with-prefixes` numbers.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use tandem_model::migration::Format;

/// How the directory's files are numbered: the prefix before the name and what follows it.
#[derive(Debug, PartialEq, Eq)]
enum Numbering {
    /// `01_`, `0042-`: a counter of this many digits.
    Counter { width: usize, last: u64, sep: char },
    /// `20240131120000_`: the UTC time the file was made, to the second.
    Timestamp { last: u64, sep: char },
}

/// The leading number of a file stem and the separator after it: `03_add` is (`03`, `_`).
fn prefix(stem: &str) -> Option<(&str, char)> {
    let digits = stem.len() - stem.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let sep = stem[digits..].chars().next()?;
    (digits > 0 && (sep == '_' || sep == '-')).then(|| (&stem[..digits], sep))
}

/// The numbering of these file stems (name order), from the last one that is numbered.
fn numbering(stems: &[String]) -> Result<Option<Numbering>> {
    let Some((digits, sep)) = stems.iter().rev().find_map(|s| prefix(s)) else {
        if let Some(first) = stems.first() {
            bail!(
                "the directory's migrations are not numbered ({first:?}, ...), and they apply in file-name order: name the new file yourself so that it sorts last"
            );
        }
        return Ok(None);
    };
    let last: u64 = digits
        .parse()
        .with_context(|| format!("{digits:?} is too long a number"))?;
    Ok(Some(if digits.len() == 14 && last >= 19_700_101_000_000 {
        Numbering::Timestamp { last, sep }
    } else {
        Numbering::Counter {
            width: digits.len(),
            last,
            sep,
        }
    }))
}

/// `YYYYMMDDHHMMSS` of a Unix time, in UTC.
fn timestamp(unix: u64) -> u64 {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    // Howard Hinnant's days-to-civil, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = (year * 10_000 + month * 100 + day) as u64;
    date * 1_000_000 + (secs / 3600) * 10_000 + (secs % 3600 / 60) * 100 + secs % 60
}

/// The prefix of the next file: the counter after the last, or now (or, when the clock is
/// behind the last file, the second after it).
fn next_prefix(numbering: Option<Numbering>, now_unix: u64) -> Result<String> {
    Ok(match numbering {
        None => "0001_".to_string(),
        Some(Numbering::Counter { width, last, sep }) => {
            let next = last + 1;
            let text = format!("{next:0width$}");
            if text.len() > width {
                bail!(
                    "the next number, {next}, has more digits than the directory's numbering ({width}) and would sort before the files it follows; renumber the files with more digits first"
                );
            }
            format!("{text}{sep}")
        }
        Some(Numbering::Timestamp { last, sep }) => {
            format!("{}{sep}", timestamp(now_unix).max(last + 1))
        }
    })
}

/// The migration file stems of `dir`, in name order, with the format of the last one.
fn existing(dir: &Path) -> Result<(Vec<String>, Option<Format>)> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| Format::from_path(p).is_some())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(e).with_context(|| format!("{}: cannot read directory", dir.display()))
        }
    };
    files.sort();
    let format = files.last().and_then(|p| Format::from_path(p));
    let stems = files
        .iter()
        .filter_map(|p| p.file_stem()?.to_str().map(str::to_string))
        .collect();
    Ok((stems, format))
}

/// The skeleton: no operations yet, so that `validate` and `migrate` refuse it, naming it,
/// until some are written.
fn skeleton(name: &str, format: Format) -> String {
    match format {
        Format::Json => "{\n  \"operations\": []\n}\n".to_string(),
        Format::Yaml => format!(
            "# {name}: a tandem migration (pgroll's format). Write its operations below; until then\n\
             # `tandem validate` and `tandem migrate` refuse the file. Each operation is a map with one\n\
             # key, its kind, for example:\n\
             #\n\
             #   - add_column:\n\
             #       table: users\n\
             #       column: {{name: nickname, type: text, nullable: true}}\n\
             #\n\
             # The kinds and their fields: the README's \"Migration files\", or `tandem json-schema`.\n\
             operations: []\n"
        ),
    }
}

/// Writes `DIR/<prefix><name>.<ext>` and returns its path. Refuses a name that the directory
/// already has (numbered or not), and never overwrites a file.
pub fn create(dir: &Path, name: &str, format: Option<Format>) -> Result<PathBuf> {
    let (stems, found_format) = existing(dir)?;
    if let Some(same) = stems
        .iter()
        .find(|s| *s == name || prefix(s).is_some_and(|(d, _)| &s[d.len() + 1..] == name))
    {
        bail!(
            "{}: the directory already has a migration named {name:?} ({same}); choose another name",
            dir.display()
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let prefix = next_prefix(numbering(&stems)?, now).with_context(|| dir.display().to_string())?;
    let format = format.or(found_format).unwrap_or(Format::Yaml);
    let ext = match format {
        Format::Json => "json",
        Format::Yaml => "yaml",
    };
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let path = dir.join(format!("{prefix}{name}.{ext}"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("{}: cannot create the file", path.display()))?;
    std::io::Write::write_all(&mut file, skeleton(name, format).as_bytes())
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stems(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn follows_the_directory_numbering() {
        let next = |names: &[&str]| next_prefix(numbering(&stems(names)).unwrap(), 0).unwrap();
        assert_eq!(next(&[]), "0001_");
        assert_eq!(next(&["01_a", "02_b"]), "03_");
        assert_eq!(next(&["0009-a"]), "0010-");
        assert_eq!(next(&["001_a", "README_notes"]), "002_");
        assert!(next_prefix(numbering(&stems(&["99_a"])).unwrap(), 0).is_err());
        assert!(numbering(&stems(&["add_users"])).is_err());
    }

    #[test]
    fn timestamps_take_the_time_or_the_second_after_the_last() {
        // 2024-02-29 13:14:15 UTC.
        assert_eq!(timestamp(1_709_212_455), 20_240_229_131_415);
        assert_eq!(timestamp(0), 19_700_101_000_000);
        let n = numbering(&stems(&["20240131120000_a"])).unwrap();
        assert_eq!(next_prefix(n, 1_709_212_455).unwrap(), "20240229131415_");
        let n = numbering(&stems(&["20990131120000_a"])).unwrap();
        assert_eq!(next_prefix(n, 1_709_212_455).unwrap(), "20990131120001_");
    }
}
