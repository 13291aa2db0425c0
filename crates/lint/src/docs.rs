//! Generates `docs/lint/<rule-name>.md` and `docs/lint/README.md` from the rules' own data. A
//! test compares the output with the committed files.

use crate::rules::{Rule, RULES};

/// The speed the benchmark (`cargo bench -p tandem-lint`) measured, recorded by hand.
pub const MEASURED_SPEED: &str = "177 ms for the 10,000 statements (530 KiB), about 56,000 statements/s (release build, best of 5 runs, on a 2-core machine shared with other builds)";

/// Every generated file: (path under `docs/lint/`, contents).
pub fn pages() -> Vec<(String, String)> {
    let mut out = vec![("README.md".to_string(), index())];
    out.extend(
        RULES
            .iter()
            .map(|r| (format!("{}.md", r.name), rule_page(r))),
    );
    out
}

fn example_lang(rule: &Rule) -> &'static str {
    if rule.is_migration_rule() {
        "yaml"
    } else {
        "sql"
    }
}

pub fn rule_page(rule: &Rule) -> String {
    let lang = example_lang(rule);
    let mut s = format!(
        "<!-- generated from crates/lint/src/rules/{}.rs; do not edit -->\n# {} `{}`\n\n",
        rule.name.replace('-', "_"),
        rule.id,
        rule.name
    );
    s.push_str(&format!(
        "**Level:** {} · **Checks:** {}\n\n{}\n\n## Why\n\n{}\n\n",
        rule.level.name(),
        if rule.is_migration_rule() {
            "tandem migration files"
        } else {
            "SQL (plain files and the SQL inside migration files)"
        },
        rule.summary,
        rule.explanation
    ));
    s.push_str(&format!(
        "## Bad\n\n```{lang}\n{}\n```\n\n",
        rule.bad.trim_end()
    ));
    s.push_str(&format!(
        "## Good\n\n```{lang}\n{}\n```\n\n",
        rule.good.trim_end()
    ));
    if !rule.setup.is_empty() {
        s.push_str(&format!(
            "The examples are {} (in the tests) against a database prepared with:\n\n```sql\n{}\n```\n\n",
            if rule.is_migration_rule() { "validated" } else { "run" },
            rule.setup
        ));
    }
    s.push_str(&format!(
        "## Safe alternative\n\n```{lang}\n{}\n```\n\n",
        rule.safe_alternative
    ));
    if let Some(t) = rule.tandem {
        s.push_str(&format!("## With tandem\n\n```yaml\n{t}\n```\n\n`tandem convert FILE` writes such a migration from a SQL file.\n\n"));
    }
    s.push_str(&format!(
        "## Ignoring it\n\n```sql\n-- tandem-lint: ignore {} (say why)\n```\n\nor in `tandem.toml`:\n\n```toml\n[lint]\nexclude = [\"{}\"]\n```\n",
        rule.name, rule.name
    ));
    s
}

pub fn index() -> String {
    let mut s = String::from(
        "<!-- generated from crates/lint/src/rules/; do not edit -->\n# tandem lint rules\n\n\
`tandem lint FILE... | -` reads plain SQL migrations with PostgreSQL's own grammar, and tandem \
migration files (`.json`, `.yaml`, `.yml`), and reports what would lock or break a running \
application. Exit code 1 when an error-level rule fires, 4 when a file cannot be parsed.\n\n\
Each finding points at the offending clause and comes with the SQL to run instead, written for \
that statement; every violation of a statement is reported. `--format` is `human` (default), \
`compact` (one line per finding, `file:line:col: severity: RULE name: message`), `json`, \
`github` or `sarif`; `tandem lint --explain RULE` prints a rule's page for a terminal.\n\n\
Every rule's bad and good examples run on a real PostgreSQL in the tests, and the locks and \
rewrites the rules describe are measured there with `tandem trace`'s tracer: the bad example \
takes the blocking lock (or rewrites the table) the rule names, and the CONCURRENTLY \
alternatives block nothing.\n\n\
| id | rule | level | what it catches |\n|---|---|---|---|\n",
    );
    for r in RULES {
        s.push_str(&format!(
            "| {} | [{}]({}.md) | {} | {} |\n",
            r.id,
            r.name,
            r.name,
            r.level.name(),
            r.summary
        ));
    }
    s.push_str(
        "\n## Configuration\n\n`tandem.toml` in the current directory (or `--config FILE`):\n\n\
```toml\n[lint]\npg_version = 15            # what is safe depends on it; --pg-version overrides\n\
runner = \"goose\"            # how files run (default: recognised per file, else psql); --runner\n\
new_tables = \"file\"         # a created table is new in its file only, or for the whole \"run\"\n\
single_transaction = false  # files of no known runner run as one transaction (psql -1)\n\
exclude = [\"prefer-text-over-char\"]\nexclude_paths = [\"migrations/legacy/**\"]\n\n\
[lint.levels]\ndrop-column = \"error\"\n```\n\n\
A statement is exempted with a comment on it or on the lines above it: \
`-- tandem-lint: ignore drop-column, T017 (reason)`. An ignore that suppresses nothing is \
reported as `unused-ignore`.\n\n",
    );
    s.push_str(&format!(
        "## Speed\n\n`cargo bench -p tandem-lint` lints a generated file of 10,000 statements. \
Measured: {MEASURED_SPEED}.\n"
    ));
    s
}
