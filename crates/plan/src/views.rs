//! The version schema: one view per table, exposing the table as the new version sees it
//! (renamed and new columns, dropped ones hidden), with the columns' defaults carried onto the
//! view so an insert through it behaves like an insert into the table.

use crate::overlay::Overlay;
use crate::step::{LockMode, Step};
use tandem_model::{qualified, quote_ident, quote_literal, Schema};

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
        format!(
            "CREATE SCHEMA {};\n{}",
            quote_ident(version_schema),
            schema_usage_like(schema, version_schema)
        ),
    )];
    for (name, table) in &physical.tables {
        let Some(view_name) = overlay.table_name(name) else {
            continue;
        };
        if needs_own_rights(table, pg_major) {
            if shows_table_as_is(overlay, name) {
                // No view can both honour the table's policies and serve it (see
                // `needs_own_rights`). The new version finds the table itself on its
                // search_path instead, under its policies, in the same shape.
                continue;
            }
            // The planner refuses this (`row_security_refusal`); a `sql` operation may still
            // have enabled row-level security during start, so fail the start here too.
            steps.push(Step::tx(
                format!("refuse a view over {name}, which has row-level security"),
                format!(
                    "DO $$ BEGIN RAISE EXCEPTION '%', {}; END $$",
                    quote_literal(&row_security_message(name, pg_major))
                ),
            ));
            continue;
        }
        // security_invoker makes the view check the querying role's privileges on the table,
        // not the owner's, so revoking one on the table takes effect on the view at once. But it
        // checks them on every column the view shows, whichever the query reads: a role granted
        // only some columns could not read the view at all. Such tables get a view with its
        // owner's rights, which checks the view's own column privileges, copied from the table's.
        let options = if pg_major >= 15 && !table.column_grants {
            " WITH (security_invoker = true)"
        } else {
            ""
        };
        let mut select = Vec::new();
        let mut shown = Vec::new();
        let mut defaults = Vec::new();
        for col in in_view_order(table, overlay.stand_ins.get(name)) {
            let Some(col_name) = overlay.column_name(name, &col.name) else {
                continue;
            };
            shown.push((col.name.clone(), col_name.to_string()));
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
        sql.push_str(";\n");
        sql.push_str(&privileges_like_table(
            &qualified(schema, name),
            &view,
            &shown,
        ));
        steps.push(
            Step::tx(format!("create view {version_schema}.{view_name}"), sql)
                .lock(LockMode::AccessShare, qualified(schema, name)),
        );
    }
    steps
}

/// The table's columns with each second column where the column it stands in for is.
fn in_view_order<'a>(
    table: &'a tandem_model::Table,
    stand_ins: Option<&std::collections::BTreeMap<String, String>>,
) -> Vec<&'a tandem_model::Column> {
    let Some(stand_ins) = stand_ins else {
        return table.columns.iter().collect();
    };
    let position = |c: &tandem_model::Column| {
        let at = stand_ins.get(&c.name).unwrap_or(&c.name);
        table.columns.iter().position(|o| &o.name == at)
    };
    let mut columns: Vec<&tandem_model::Column> = table.columns.iter().collect();
    // Stable: the original (hidden) sorts just before the column that stands in for it.
    columns.sort_by_key(|c| (position(c), stand_ins.contains_key(&c.name)));
    columns
}

/// Whether the new version sees `table` exactly as it is: same name, every column under its own
/// name, no default of its own.
fn shows_table_as_is(overlay: &Overlay, table: &str) -> bool {
    overlay.table_name(table) == Some(table)
        && overlay.columns.get(table).is_none_or(|columns| {
            columns
                .iter()
                .all(|(physical, shown)| shown.as_deref() == Some(physical.as_str()))
        })
        && overlay.defaults.get(table).is_none_or(|d| d.is_empty())
}

/// Whether a view over `table` would have to read it with the querying role's rights (for its
/// row-level security policies) but cannot: PostgreSQL 14 has no security_invoker, and with
/// column privileges security_invoker would shut out the roles granted only some columns.
fn needs_own_rights(table: &tandem_model::Table, pg_major: u32) -> bool {
    table.row_security && (pg_major < 15 || table.column_grants)
}

fn row_security_message(table: &str, pg_major: u32) -> String {
    let why = if pg_major < 15 {
        "PostgreSQL 14 has no security_invoker, so a view over it would read it with its owner's rights, past its policies"
    } else {
        "it also has column privileges, and no view can honour both: one with security_invoker checks the table's privileges on every column it shows, which shuts out the roles granted only some columns, and one without reads the table with its owner's rights, past its policies"
    };
    format!(
        "table {table:?} has row-level security, and this migration changes how the new version sees it; \
         {why}. Change this table in a maintenance window{}; tables a migration does not change are \
         read by the new version directly, under their policies",
        if pg_major < 15 { ", or upgrade to PostgreSQL 15 or later" } else { "" }
    )
}

/// A refusal for the first table with row-level security that no view can serve (see
/// `needs_own_rights`) and whose view would not show it exactly as it is: known before start
/// changes anything.
pub fn row_security_refusal(physical: &Schema, overlay: &Overlay, pg_major: u32) -> Option<String> {
    physical
        .tables
        .iter()
        .find(|(name, table)| {
            needs_own_rights(table, pg_major)
                && overlay.table_name(name).is_some()
                && !shows_table_as_is(overlay, name)
        })
        .map(|(name, _)| row_security_message(name, pg_major))
}

/// SQL that grants USAGE on `version_schema` to every role that has it on `schema` (PUBLIC
/// included, the schema's owner too), so that exactly the roles that can reach the tables can
/// reach their views. The privileges are read when the SQL runs.
fn schema_usage_like(schema: &str, version_schema: &str) -> String {
    do_block(&format!(
        r#"DECLARE
  a record;
BEGIN
  FOR a IN SELECT x.grantee, x.is_grantable
             FROM pg_namespace n,
                  aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) x
            WHERE n.nspname = {schema_lit} AND x.privilege_type = 'USAGE'
              AND x.grantee <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
  LOOP
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %s%s', {version_lit}, {grantee}, {option});
  END LOOP;
END;
"#,
        schema_lit = quote_literal(schema),
        version_lit = quote_literal(version_schema),
        grantee = GRANTEE_SQL,
        option = GRANT_OPTION_SQL,
    ))
}

/// SQL that gives `view` (qualified) the privileges `table` (qualified) has, table-wide and per
/// column: `columns` pairs each physical column the view shows with its name in the view. The
/// view's owner (the role creating it) is left out: it has them all. With security_invoker the
/// table's own privileges are checked as well; without it the view's column privileges are what
/// keeps a role granted only some columns to those columns.
pub fn privileges_like_table(table: &str, view: &str, columns: &[(String, String)]) -> String {
    let pairs: Vec<String> = columns
        .iter()
        .map(|(physical, shown)| format!("({}, {})", quote_literal(physical), quote_literal(shown)))
        .collect();
    let column_loop = if pairs.is_empty() {
        String::new()
    } else {
        format!(
            r#"  FOR a IN SELECT m.shown, x.privilege_type, x.is_grantable, x.grantee
             FROM (VALUES {pairs}) AS m(physical, shown)
             JOIN pg_attribute att ON att.attrelid = {table_lit}::regclass
                                  AND att.attname = m.physical
             CROSS JOIN LATERAL aclexplode(att.attacl) x
            WHERE x.grantee <> me
  LOOP
    EXECUTE format('GRANT %s (%I) ON %s TO %s%s', a.privilege_type, a.shown, {view_lit},
        {grantee}, {option});
  END LOOP;
"#,
            pairs = pairs.join(", "),
            table_lit = quote_literal(table),
            view_lit = quote_literal(view),
            grantee = GRANTEE_SQL,
            option = GRANT_OPTION_SQL,
        )
    };
    do_block(&format!(
        r#"DECLARE
  a record;
  me oid := (SELECT oid FROM pg_roles WHERE rolname = current_user);
BEGIN
  FOR a IN SELECT x.privilege_type, x.is_grantable, x.grantee
             FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) x
            WHERE c.oid = {table_lit}::regclass AND x.grantee <> me
  LOOP
    EXECUTE format('GRANT %s ON %s TO %s%s', a.privilege_type, {view_lit}, {grantee}, {option});
  END LOOP;
{column_loop}END;
"#,
        table_lit = quote_literal(table),
        view_lit = quote_literal(view),
        grantee = GRANTEE_SQL,
        option = GRANT_OPTION_SQL,
    ))
}

/// SQL that gives column `to` of `table` (qualified) the column privileges `from` has: a second
/// column stands in for the first one for the new version, and a view with security_invoker
/// checks the querying role's privileges on the column it reads.
pub fn column_privileges_like(table: &str, from: &str, to: &str) -> String {
    do_block(&format!(
        r#"DECLARE
  a record;
BEGIN
  FOR a IN SELECT x.privilege_type, x.is_grantable, x.grantee
             FROM pg_attribute att, aclexplode(att.attacl) x
            WHERE att.attrelid = {table_lit}::regclass AND att.attname = {from_lit}
              AND x.grantee <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
  LOOP
    EXECUTE format('GRANT %s (%I) ON %s TO %s%s', a.privilege_type, {to_lit}, {table_lit},
        {grantee}, {option});
  END LOOP;
END;
"#,
        table_lit = quote_literal(table),
        from_lit = quote_literal(from),
        to_lit = quote_literal(to),
        grantee = GRANTEE_SQL,
        option = GRANT_OPTION_SQL,
    ))
}

/// The grantee of an `aclexplode` row `a`, as GRANT takes it (role 0 is PUBLIC).
const GRANTEE_SQL: &str =
    "CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END";
/// The grant option of an `aclexplode` row `a`, as GRANT takes it.
const GRANT_OPTION_SQL: &str = "CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END";

fn do_block(body: &str) -> String {
    let tag = crate::trigger::dollar_tag(body);
    format!("DO {tag}\n{body}{tag}")
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

/// SQL that runs `alter`, a change of `column`'s type in `table` (schema-qualified), with the
/// views of `version_schema` that use the column dropped just before and created again just
/// after, as they were: definition, options (`security_invoker`), column defaults, comments
/// and grants. PostgreSQL refuses to change the type of a column a view uses. Any other view
/// that uses the column stops it with SQLSTATE 2BP01 (dependent objects still exist), naming
/// the views: complete has refused the user's views beforehand, so these are the older
/// version schemas `migrate` keeps for the application version still running, whose types
/// must not change under it. The definitions are read with `search_path`
/// set to `pg_catalog`, so every name in them is schema-qualified and resolves to the same
/// object when they are replayed.
pub fn recreating_dependent_views(
    version_schema: &str,
    table: &str,
    column: &str,
    alter: &str,
) -> String {
    let body = format!(
        r#"DECLARE
  v record;
  a record;
  drops text := '';
  others text[] := '{{}}';
  creates text := '';
  path text := current_setting('search_path');
BEGIN
  PERFORM set_config('search_path', 'pg_catalog', true);
  FOR v IN
    SELECT DISTINCT c.oid, n.nspname, c.relname, c.reloptions, c.relacl
      FROM pg_depend d
      JOIN pg_rewrite r ON r.oid = d.objid
      JOIN pg_class c ON c.oid = r.ev_class
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
       AND d.refobjid = {table_lit}::regclass AND c.oid <> {table_lit}::regclass
       AND d.refobjsubid = (SELECT attnum FROM pg_attribute
                             WHERE attrelid = {table_lit}::regclass AND attname = {column_lit})
  LOOP
    IF v.nspname <> {schema_lit} THEN
      others := others || format('%I.%I', v.nspname, v.relname);
      CONTINUE;
    END IF;
    drops := drops || format('DROP VIEW %I.%I;', v.nspname, v.relname);
    creates := creates || format('CREATE VIEW %I.%I%s AS %s;', v.nspname, v.relname,
        CASE WHEN v.reloptions IS NULL THEN ''
             ELSE ' WITH (' || array_to_string(v.reloptions, ', ') || ')' END,
        rtrim(pg_get_viewdef(v.oid), E'; \n'));
    FOR a IN SELECT att.attname, pg_get_expr(ad.adbin, ad.adrelid) AS expr
               FROM pg_attrdef ad
               JOIN pg_attribute att ON att.attrelid = ad.adrelid AND att.attnum = ad.adnum
              WHERE ad.adrelid = v.oid
    LOOP
      creates := creates || format('ALTER VIEW %I.%I ALTER COLUMN %I SET DEFAULT %s;',
          v.nspname, v.relname, a.attname, a.expr);
    END LOOP;
    FOR a IN SELECT att.attname, col_description(v.oid, att.attnum) AS comment
               FROM pg_attribute att
              WHERE att.attrelid = v.oid AND att.attnum > 0
                AND col_description(v.oid, att.attnum) IS NOT NULL
    LOOP
      creates := creates || format('COMMENT ON COLUMN %I.%I.%I IS %L;',
          v.nspname, v.relname, a.attname, a.comment);
    END LOOP;
    IF obj_description(v.oid, 'pg_class') IS NOT NULL THEN
      creates := creates || format('COMMENT ON VIEW %I.%I IS %L;',
          v.nspname, v.relname, obj_description(v.oid, 'pg_class'));
    END IF;
    FOR a IN SELECT x.privilege_type, x.is_grantable, x.grantee
               FROM aclexplode(v.relacl) x
    LOOP
      creates := creates || format('GRANT %s ON %I.%I TO %s%s;', a.privilege_type,
          v.nspname, v.relname,
          CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
          CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
  END LOOP;
  PERFORM set_config('search_path', path, true);
  IF others <> '{{}}' THEN
    RAISE EXCEPTION 'cannot change the type of column % of % in place: views % use it', {column_lit}, {table_lit}, array_to_string(others, ', ')
      USING ERRCODE = 'dependent_objects_still_exist';
  END IF;
  IF drops <> '' THEN
    EXECUTE drops;
  END IF;
  {alter};
  IF creates <> '' THEN
    EXECUTE creates;
  END IF;
END;
"#,
        table_lit = quote_literal(table),
        schema_lit = quote_literal(version_schema),
        column_lit = quote_literal(column),
    );
    do_block(&body)
}
