//! Renders findings for people (with the source line and a caret), one line each (gcc style),
//! as JSON, as GitHub workflow annotations, and as SARIF 2.1.0; and the rules' Markdown pages
//! for a terminal. Pure: returns strings, the binary prints them.

use crate::rules::{Level, RULES};
use crate::Finding;
use serde_json::json;

/// The findings of one file.
pub struct FileReport<'a> {
    pub file: &'a str,
    pub findings: &'a [Finding],
}

pub fn human(reports: &[FileReport]) -> String {
    let mut out = String::new();
    let mut counts = (0, 0);
    // The explanation and the alternatives are printed the first time a rule appears.
    let mut explained = std::collections::HashSet::new();
    for report in reports {
        for f in report.findings {
            match f.level {
                Level::Error => counts.0 += 1,
                Level::Warning => counts.1 += 1,
            }
            let gutter = " ".repeat(f.line.to_string().len());
            out.push_str(&format!(
                "{}:{}:{}: {}[{} {}]: {}\n",
                report.file,
                f.line,
                f.column,
                f.level.name(),
                f.rule.id,
                f.rule.name,
                f.message
            ));
            if let Some(origin) = &f.origin {
                out.push_str(&format!("{gutter} = in {origin}\n"));
            }
            let caret_at: String = f
                .source_line
                .chars()
                .take(f.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!(
                "{gutter} |\n{} | {}\n{gutter} | {caret_at}^\n",
                f.line, f.source_line
            ));
            let first = explained.insert(f.rule.id);
            if first {
                out.push_str(&format!("{gutter} = why: {}\n", f.rule.explanation));
            }
            // The SQL written for this statement, every time; the rule's own example once.
            match &f.instead {
                Some(sql) => out.push_str(&format!(
                    "{gutter} = instead:\n{}\n",
                    indent(sql, &format!("{gutter}     "))
                )),
                None if first => out.push_str(&format!(
                    "{gutter} = instead, for example:\n{}\n",
                    indent(f.rule.safe_alternative, &format!("{gutter}     "))
                )),
                None => {}
            }
            if !first {
                out.push_str(&format!("{gutter} = why: see {} above\n\n", f.rule.id));
                continue;
            }
            if let Some(tandem) = f.rule.tandem {
                out.push_str(&format!(
                    "{gutter} = with tandem, for example:\n{}\n",
                    indent(tandem, &format!("{gutter}     "))
                ));
                // Plain SQL only: a migration file is already in tandem's format.
                if f.origin.is_none() {
                    out.push_str(&format!(
                        "{gutter} = `tandem convert {}` writes such a migration from this file\n",
                        report.file
                    ));
                }
            }
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "{} error{}, {} warning{} in {} file{}\n",
        counts.0,
        plural(counts.0),
        counts.1,
        plural(counts.1),
        reports.len(),
        plural(reports.len())
    ));
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|l| format!("{prefix}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One line per finding, as compilers print them (`file:line:col: severity: RULE message`), and
/// nothing else: for editors' quickfix lists, grep and terminals.
pub fn compact(reports: &[FileReport]) -> String {
    let mut out = String::new();
    for r in reports {
        for f in r.findings {
            out.push_str(&format!(
                "{}:{}:{}: {}: {} {}: {}{}\n",
                r.file,
                f.line,
                f.column,
                f.level.name(),
                f.rule.id,
                f.rule.name,
                f.message,
                f.origin
                    .as_ref()
                    .map(|o| format!(" (in {o})"))
                    .unwrap_or_default()
            ));
        }
    }
    out
}

/// A generated Markdown page (`docs::rule_page`, `docs::index`) as plain text for a terminal:
/// no generator comment, headings underlined, code indented, links and emphasis as text, tables
/// as aligned columns.
pub fn terminal(markdown: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    let mut table: Vec<Vec<String>> = Vec::new();
    let flush = |table: &mut Vec<Vec<String>>, out: &mut String| {
        if table.is_empty() {
            return;
        }
        let widths: Vec<usize> = (0..table[0].len())
            .map(|i| {
                table
                    .iter()
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in table.drain(..) {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if i + 1 == row.len() {
                        c.clone()
                    } else {
                        format!("{c:<w$}", w = widths[i])
                    }
                })
                .collect();
            out.push_str(&format!("  {}\n", cells.join("  ").trim_end()));
        }
    };
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            out.push_str(&format!("    {line}\n"));
            continue;
        }
        if line.starts_with("<!--") {
            continue;
        }
        if let Some(row) = line.strip_prefix('|') {
            if row.trim_start().starts_with("---") {
                continue;
            }
            table.push(
                row.trim_end_matches('|')
                    .split(" | ")
                    .map(|c| inline(c.trim()))
                    .collect(),
            );
            continue;
        }
        flush(&mut table, &mut out);
        if let Some(h) = line.strip_prefix("# ") {
            let h = inline(h);
            out.push_str(&format!("{h}\n{}\n", "=".repeat(h.chars().count())));
        } else if let Some(h) = line.strip_prefix("## ") {
            let h = inline(h);
            out.push_str(&format!("{h}\n{}\n", "-".repeat(h.chars().count())));
        } else {
            out.push_str(&inline(line));
            out.push('\n');
        }
    }
    flush(&mut table, &mut out);
    out
}

/// Markdown inline markup as plain text: `code`, **bold**, [text](link).
fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("**") {
            rest = &rest[2..];
            continue;
        }
        if c == '`' {
            rest = &rest[1..];
            continue;
        }
        if c == '[' {
            if let Some(close) = rest.find("](") {
                if let Some(end) = rest[close..].find(')') {
                    out.push_str(&rest[1..close]);
                    rest = &rest[close + end + 1..];
                    continue;
                }
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

pub fn json(reports: &[FileReport]) -> String {
    let files: Vec<_> = reports
        .iter()
        .map(|r| {
            let findings: Vec<_> = r
                .findings
                .iter()
                .map(|f| {
                    let mut v = serde_json::to_value(f).unwrap_or_default();
                    v["help"] = json!(f.rule.summary);
                    v["safe_alternative"] = json!(f.rule.safe_alternative);
                    v
                })
                .collect();
            json!({"file": r.file, "findings": findings})
        })
        .collect();
    let errors = count(reports, Level::Error);
    let warnings = count(reports, Level::Warning);
    serde_json::to_string_pretty(&json!({
        "ok": errors == 0,
        "errors": errors,
        "warnings": warnings,
        "files": files,
    }))
    .unwrap_or_default()
}

fn count(reports: &[FileReport], level: Level) -> usize {
    reports
        .iter()
        .flat_map(|r| r.findings)
        .filter(|f| f.level == level)
        .count()
}

/// GitHub Actions workflow commands, one line per finding.
pub fn github(reports: &[FileReport]) -> String {
    let mut out = String::new();
    for r in reports {
        for f in r.findings {
            out.push_str(&format!(
                "::{} file={},line={},col={},title={}::{}\n",
                match f.level {
                    Level::Error => "error",
                    Level::Warning => "warning",
                },
                escape_property(r.file),
                f.line,
                f.column,
                escape_property(&format!("{} {}", f.rule.id, f.rule.name)),
                escape_data(&format!("{}. {}", f.message, f.rule.summary))
            ));
        }
    }
    out
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// A SARIF 2.1.0 log with one run, listing every rule.
pub fn sarif(reports: &[FileReport]) -> String {
    let rules: Vec<_> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "shortDescription": {"text": r.summary},
                "fullDescription": {"text": r.explanation},
                "help": {"text": r.safe_alternative},
                "defaultConfiguration": {"level": r.level.name()},
            })
        })
        .collect();
    let results: Vec<_> = reports
        .iter()
        .flat_map(|r| r.findings.iter().map(move |f| (r.file, f)))
        .map(|(file, f)| {
            json!({
                "ruleId": f.rule.id,
                "ruleIndex": RULES.iter().position(|r| r.id == f.rule.id),
                "level": f.level.name(),
                "message": {"text": f.message},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": file},
                        "region": {"startLine": f.line, "startColumn": f.column},
                    }
                }],
            })
        })
        .collect();
    serde_json::to_string_pretty(&json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "tandem lint",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    }))
    .unwrap_or_default()
}
