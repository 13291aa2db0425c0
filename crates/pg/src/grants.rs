//! Whether the views of the version schemas still have the privileges of their tables. `start`
//! copies them when it creates the views (`tandem_plan::views`); a GRANT or REVOKE on a table
//! made afterwards does not reach its views, so `status` lists the statements that would bring
//! them in line.

use crate::error::{Context, Result};
use postgres::GenericClient;

/// The GRANT and REVOKE statements that would give each view of `version_schemas` the
/// privileges its table in `schema` has now, table-wide and on each column the view shows
/// under the table column's own name; empty when they match. The role running tandem (the
/// views' owner) is left out, as at start.
pub fn drift(
    client: &mut impl GenericClient,
    schema: &str,
    version_schemas: &[String],
) -> Result<Vec<String>> {
    if version_schemas.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(DRIFT, &[&schema, &version_schemas])
        .context(|| {
            "comparing the privileges of the version schemas' views with their tables'".into()
        })?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

const DRIFT: &str = r#"
WITH me AS (SELECT oid FROM pg_roles WHERE rolname = current_user),
views AS (
  SELECT DISTINCT v.oid AS view, t.oid AS tab
    FROM pg_class v
    JOIN pg_namespace vn ON vn.oid = v.relnamespace
    JOIN pg_rewrite r ON r.ev_class = v.oid
    JOIN pg_depend d ON d.objid = r.oid AND d.classid = 'pg_rewrite'::regclass
                    AND d.refclassid = 'pg_class'::regclass
    JOIN pg_class t ON t.oid = d.refobjid AND t.relkind IN ('r', 'p')
    JOIN pg_namespace tn ON tn.oid = t.relnamespace
   WHERE v.relkind = 'v' AND vn.nspname = ANY($2) AND tn.nspname = $1
),
wanted AS (
  SELECT w.view, NULL::name AS col, x.grantee, x.privilege_type, x.is_grantable
    FROM views w JOIN pg_class t ON t.oid = w.tab,
         aclexplode(coalesce(t.relacl, acldefault('r', t.relowner))) x
  UNION ALL
  SELECT w.view, va.attname, x.grantee, x.privilege_type, x.is_grantable
    FROM views w
    JOIN pg_attribute va ON va.attrelid = w.view AND va.attnum > 0
    JOIN pg_attribute ta ON ta.attrelid = w.tab AND ta.attname = va.attname AND NOT ta.attisdropped,
         aclexplode(ta.attacl) x
),
present AS (
  SELECT w.view, NULL::name AS col, x.grantee, x.privilege_type, x.is_grantable
    FROM views w JOIN pg_class v ON v.oid = w.view,
         aclexplode(coalesce(v.relacl, acldefault('r', v.relowner))) x
  UNION ALL
  SELECT w.view, va.attname, x.grantee, x.privilege_type, x.is_grantable
    FROM views w
    JOIN pg_attribute va ON va.attrelid = w.view AND va.attnum > 0
    JOIN pg_attribute ta ON ta.attrelid = w.tab AND ta.attname = va.attname AND NOT ta.attisdropped,
         aclexplode(va.attacl) x
),
missing AS (
  SELECT * FROM wanted WHERE grantee <> (SELECT oid FROM me)
  EXCEPT SELECT * FROM present
),
extra AS (
  SELECT * FROM present WHERE grantee <> (SELECT oid FROM me)
  EXCEPT SELECT * FROM wanted
)
SELECT format('GRANT %s%s ON %s TO %s%s;', m.privilege_type,
              CASE WHEN m.col IS NULL THEN '' ELSE format(' (%I)', m.col) END,
              m.view::regclass,
              CASE WHEN m.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(m.grantee)) END,
              CASE WHEN m.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
  FROM missing m
UNION ALL
SELECT format('REVOKE %s%s ON %s FROM %s;', e.privilege_type,
              CASE WHEN e.col IS NULL THEN '' ELSE format(' (%I)', e.col) END,
              e.view::regclass,
              CASE WHEN e.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(e.grantee)) END)
  FROM extra e
 ORDER BY 1
"#;
