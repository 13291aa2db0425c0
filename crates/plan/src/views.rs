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
    let tag = crate::trigger::dollar_tag(&body);
    format!("DO {tag}\n{body}{tag}")
}
