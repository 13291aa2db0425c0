//! The version schema: one view per table, exposing the table as the new version sees it
//! (renamed and new columns, dropped ones hidden), with the columns' defaults carried onto the
//! view so an insert through it behaves like an insert into the table.

use crate::overlay::Overlay;
use crate::step::{LockMode, Step};
use tandem_model::{qualified, quote_ident, Schema};

/// Steps that create `version_schema` with a view per visible table of `physical`.
pub fn create_version_schema(
    schema: &str,
    version_schema: &str,
    physical: &Schema,
    overlay: &Overlay,
    pg_major: u32,
) -> Vec<Step> {
    let mut steps = vec![Step::tx(
        format!("create version schema {version_schema}"),
        format!("CREATE SCHEMA {}", quote_ident(version_schema)),
    )];
    // security_invoker makes the view check the querying role's privileges, not the owner's.
    let options = if pg_major >= 15 {
        " WITH (security_invoker = true)"
    } else {
        ""
    };
    for (name, table) in &physical.tables {
        let Some(view_name) = overlay.table_name(name) else {
            continue;
        };
        let mut select = Vec::new();
        let mut defaults = Vec::new();
        for col in &table.columns {
            let Some(col_name) = overlay.column_name(name, &col.name) else {
                continue;
            };
            select.push(if col_name == col.name {
                quote_ident(&col.name)
            } else {
                format!("{} AS {}", quote_ident(&col.name), quote_ident(col_name))
            });
            let default = match overlay.defaults.get(name).and_then(|d| d.get(&col.name)) {
                Some(d) => d.as_ref(),
                None => col.default.as_ref(),
            };
            if let Some(d) = default {
                defaults.push((col_name.to_string(), d.clone()));
            }
        }
        if select.is_empty() {
            continue;
        }
        let view = qualified(version_schema, view_name);
        let mut sql = format!(
            "CREATE VIEW {view}{options} AS SELECT {} FROM {}",
            select.join(", "),
            qualified(schema, name)
        );
        for (col, default) in defaults {
            sql.push_str(&format!(
                ";\nALTER VIEW {view} ALTER COLUMN {} SET DEFAULT {default}",
                quote_ident(&col)
            ));
        }
        steps.push(
            Step::tx(format!("create view {version_schema}.{view_name}"), sql)
                .lock(LockMode::AccessShare, qualified(schema, name)),
        );
    }
    steps
}

/// The step that drops a version schema and its views.
pub fn drop_version_schema(version_schema: &str) -> Step {
    Step::tx(
        format!("drop version schema {version_schema}"),
        format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote_ident(version_schema)
        ),
    )
}
