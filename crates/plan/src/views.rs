//! The version schema: one view per table, exposing the table as the new version sees it
//! (renamed and new columns, dropped ones hidden), with the columns' defaults carried onto the
//! view so an insert through it behaves like an insert into the table. And the pair of steps
//! that carry every view reading a column (tandem's and the user's) across the column's swap
//! or type change at complete.

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

/// The session setting in which [`saving_dependent_views`] leaves, for
/// [`recreating_saved_views`] in the same transaction, the SQL that creates the views again.
/// It is set transaction-locally, so it can never outlive the transaction that dropped them.
pub const SAVED_VIEWS_SETTING: &str = "tandem.saved_views";

/// The session setting (a `text[]`) in which the engine names the version schemas that
/// `migrate` keeps for the application version still running: their views must keep the old
/// column and type, so a view of theirs over a swapped column stops complete instead.
pub const KEPT_SCHEMAS_SETTING: &str = "tandem.kept_version_schemas";

/// The step that, before complete swaps or retypes the columns in `columns`
/// (`(schema-qualified table, column)`), drops every view and materialized view that reads one
/// of them, directly or through other views, and saves how to create each again as it was:
/// definition, options (`security_barrier`, `check_option`, `security_invoker`), owner, column
/// defaults, comments, grants (table and column), `INSTEAD OF` triggers, rules, and a
/// materialized view's indexes. PostgreSQL refuses to drop or retype a column a view reads, and
/// a view pins the type of what it reads, so this serves tandem's version views and the user's
/// alike. The definitions are read with `search_path` set to `pg_catalog`, so every name in them
/// is schema-qualified; each resolves by name, after the swap, to the column that took the old
/// one's place. Views are dropped deepest first and saved to be created shallowest first, a
/// view's depth being its longest path of views from the columns.
///
/// It stops with SQLSTATE 2BP01 (dependent objects still exist), before dropping anything,
/// when a view that reads a column is in a version schema of [`KEPT_SCHEMAS_SETTING`], and with
/// 0A000 when a materialized view that reads one holds data: building it again inside this
/// transaction would hold the swap's ACCESS EXCLUSIVE lock for as long as its query runs (start
/// refuses such a view beforehand; this is the guard for one refreshed since). An unpopulated
/// one is created again `WITH NO DATA`, which takes no time.
///
/// The new version's views (in `version_schema`) may also read second columns, which complete
/// renames before the views are created again: `renames` (second column → final name) are
/// applied to their definitions, longest name first, so that no name is cut inside another.
///
/// [`recreating_saved_views`] must run later in the same transaction.
pub fn saving_dependent_views(
    columns: &[(String, String)],
    version_schema: &str,
    renames: &[(String, String)],
) -> Step {
    let renames_sql = if renames.is_empty() {
        String::new()
    } else {
        let values: Vec<String> = renames
            .iter()
            .map(|(from, to)| format!("({}, {})", quote_literal(from), quote_literal(to)))
            .collect();
        format!(
            "    IF v.nspname = {vs} THEN
      FOR a IN SELECT f, t FROM (VALUES {values}) AS r(f, t) ORDER BY length(f) DESC LOOP
        def := replace(def, quote_ident(a.f), quote_ident(a.t));
      END LOOP;
    END IF;
",
            vs = quote_literal(version_schema),
            values = values.join(", ")
        )
    };
    let roots: Vec<String> = columns
        .iter()
        .map(|(table, column)| {
            format!(
                "({t}::regclass, (SELECT attnum FROM pg_attribute WHERE attrelid = {t}::regclass AND attname = {c}))",
                t = quote_literal(table),
                c = quote_literal(column)
            )
        })
        .collect();
    let names: Vec<String> = columns.iter().map(|(t, c)| format!("{t}.{c}")).collect();
    let body = format!(
        r#"DECLARE
  v record;
  a record;
  kept text[] := coalesce(nullif(current_setting({kept_setting}, true), '')::text[], '{{}}');
  blocked text[] := '{{}}';
  populated text[] := '{{}}';
  drops text := '';
  creates text := '';
  one text;
  def text;
  kind text;
  path text := current_setting('search_path');
BEGIN
  PERFORM set_config('search_path', 'pg_catalog', true);
  FOR v IN
    WITH RECURSIVE roots(rel, att) AS (VALUES {roots}),
    dep(oid, level) AS (
      SELECT r.ev_class, 1
        FROM roots
        JOIN pg_depend d ON d.refobjid = roots.rel AND d.refobjsubid = roots.att
        JOIN pg_rewrite r ON r.oid = d.objid
       WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
         AND r.ev_class <> roots.rel
      UNION
      SELECT r.ev_class, dep.level + 1
        FROM dep
        JOIN pg_depend d ON d.refobjid = dep.oid
        JOIN pg_rewrite r ON r.oid = d.objid
       WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
         AND r.ev_class <> dep.oid
    ),
    deepest AS (SELECT oid, max(level) AS level FROM dep GROUP BY oid)
    SELECT c.oid, n.nspname, c.relname, c.relkind, c.reloptions, c.relacl, c.relispopulated,
           pg_get_userbyid(c.relowner) AS owner, deepest.level
      FROM deepest
      JOIN pg_class c ON c.oid = deepest.oid
      JOIN pg_namespace n ON n.oid = c.relnamespace
     ORDER BY deepest.level DESC, n.nspname DESC, c.relname DESC
  LOOP
    IF v.nspname = ANY (kept) THEN
      blocked := blocked || format('%I.%I', v.nspname, v.relname);
      CONTINUE;
    END IF;
    IF v.relkind = 'm' AND v.relispopulated THEN
      populated := populated || format('%I.%I', v.nspname, v.relname);
      CONTINUE;
    END IF;
    kind := CASE WHEN v.relkind = 'm' THEN 'MATERIALIZED VIEW' ELSE 'VIEW' END;
    drops := drops || format('DROP %s %I.%I;', kind, v.nspname, v.relname);
    def := rtrim(pg_get_viewdef(v.oid), E'; \n');
{renames_sql}    one := format('CREATE %s %I.%I%s AS %s%s;', kind, v.nspname, v.relname,
        CASE WHEN v.reloptions IS NULL THEN ''
             ELSE ' WITH (' || array_to_string(v.reloptions, ', ') || ')' END,
        def,
        CASE WHEN v.relkind = 'm' THEN ' WITH NO DATA' ELSE '' END);
    IF v.owner <> current_user THEN
      one := one || format('ALTER %s %I.%I OWNER TO %I;', kind, v.nspname, v.relname, v.owner);
    END IF;
    FOR a IN SELECT att.attname, pg_get_expr(ad.adbin, ad.adrelid) AS expr
               FROM pg_attrdef ad
               JOIN pg_attribute att ON att.attrelid = ad.adrelid AND att.attnum = ad.adnum
              WHERE ad.adrelid = v.oid
              ORDER BY att.attnum
    LOOP
      one := one || format('ALTER VIEW %I.%I ALTER COLUMN %I SET DEFAULT %s;',
          v.nspname, v.relname, a.attname, a.expr);
    END LOOP;
    IF obj_description(v.oid, 'pg_class') IS NOT NULL THEN
      one := one || format('COMMENT ON %s %I.%I IS %L;', kind, v.nspname, v.relname,
          obj_description(v.oid, 'pg_class'));
    END IF;
    FOR a IN SELECT att.attname, col_description(v.oid, att.attnum) AS comment
               FROM pg_attribute att
              WHERE att.attrelid = v.oid AND att.attnum > 0
                AND col_description(v.oid, att.attnum) IS NOT NULL
              ORDER BY att.attnum
    LOOP
      one := one || format('COMMENT ON COLUMN %I.%I.%I IS %L;',
          v.nspname, v.relname, a.attname, a.comment);
    END LOOP;
    FOR a IN SELECT x.privilege_type, x.is_grantable, x.grantee
               FROM aclexplode(v.relacl) x
    LOOP
      one := one || format('GRANT %s ON %I.%I TO %s%s;', a.privilege_type,
          v.nspname, v.relname,
          CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
          CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    FOR a IN SELECT att.attname, x.privilege_type, x.is_grantable, x.grantee
               FROM pg_attribute att, aclexplode(att.attacl) x
              WHERE att.attrelid = v.oid AND att.attnum > 0 AND att.attacl IS NOT NULL
              ORDER BY att.attnum
    LOOP
      one := one || format('GRANT %s (%I) ON %I.%I TO %s%s;', a.privilege_type, a.attname,
          v.nspname, v.relname,
          CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
          CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    FOR a IN SELECT pg_get_triggerdef(t.oid) AS def
               FROM pg_trigger t WHERE t.tgrelid = v.oid AND NOT t.tgisinternal ORDER BY t.tgname
    LOOP
      one := one || a.def || ';';
    END LOOP;
    FOR a IN SELECT pg_get_ruledef(r.oid) AS def
               FROM pg_rewrite r WHERE r.ev_class = v.oid AND r.rulename <> '_RETURN' ORDER BY r.rulename
    LOOP
      one := one || a.def;
    END LOOP;
    FOR a IN SELECT pg_get_indexdef(i.indexrelid) AS def
               FROM pg_index i WHERE i.indrelid = v.oid ORDER BY i.indexrelid
    LOOP
      one := one || a.def || ';';
    END LOOP;
    creates := one || creates;
  END LOOP;
  PERFORM set_config('search_path', path, true);
  IF blocked <> '{{}}' THEN
    RAISE EXCEPTION 'cannot change % at complete: the views % of a version schema kept for the application version still running read it', {names_lit}, array_to_string(blocked, ', ')
      USING ERRCODE = 'dependent_objects_still_exist';
  END IF;
  IF populated <> '{{}}' THEN
    RAISE EXCEPTION 'cannot change % at complete: the materialized views % read it and hold data; rebuilding them here would hold an ACCESS EXCLUSIVE lock, which blocks all reads and writes of the table, while their queries run', {names_lit}, array_to_string(populated, ', ')
      USING ERRCODE = 'feature_not_supported',
            HINT = 'drop them (or REFRESH them WITH NO DATA) and run complete again; create or refresh them once it is done';
  END IF;
  IF drops <> '' THEN
    EXECUTE drops;
  END IF;
  PERFORM set_config({saved_setting}, coalesce(current_setting({saved_setting}, true), '') || creates, true);
END;
"#,
        roots = roots.join(", "),
        kept_setting = quote_literal(KEPT_SCHEMAS_SETTING),
        saved_setting = quote_literal(SAVED_VIEWS_SETTING),
        names_lit = quote_literal(&names.join(", ")),
        renames_sql = renames_sql,
    );
    let tag = crate::trigger::dollar_tag(&body);
    Step::tx(
        format!("drop the views that read {}, saving them", names.join(", ")),
        format!("DO {tag}\n{body}{tag}"),
    )
}

/// The step that creates again, in the same transaction, the views [`saving_dependent_views`]
/// dropped, now over the columns that took the old ones' places.
pub fn recreating_saved_views() -> Step {
    let body = format!(
        r#"DECLARE
  creates text := coalesce(current_setting({saved}, true), '');
BEGIN
  IF creates <> '' THEN
    EXECUTE creates;
  END IF;
  PERFORM set_config({saved}, '', true);
END;
"#,
        saved = quote_literal(SAVED_VIEWS_SETTING)
    );
    Step::tx("create the saved views again", do_block(&body))
}
