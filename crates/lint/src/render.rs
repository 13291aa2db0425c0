//! Renders findings for people (with the source line and a caret), as JSON, as GitHub workflow
//! annotations, and as SARIF 2.1.0. Pure: returns strings, the binary prints them.

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
            if !explained.insert(f.rule.id) {
                out.push_str(&format!("{gutter} = see {} above\n\n", f.rule.id));
                continue;
            }
            out.push_str(&format!("{gutter} = why: {}\n", f.rule.explanation));
            out.push_str(&format!(
                "{gutter} = instead:\n{}\n",
                indent(f.rule.safe_alternative, &format!("{gutter}     "))
            ));
            if let Some(tandem) = f.rule.tandem {
                out.push_str(&format!(
                    "{gutter} = with tandem:\n{}\n",
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
