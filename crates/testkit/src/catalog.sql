-- A description of every user object in the database, one line per fact, for comparing two
-- states of one database when the cluster's own pg_dump is not at hand (the server builds of
-- other major versions ship without it). It covers what tandem creates, changes and drops:
-- schemas, relations, columns, constraints, indexes, triggers, functions, views, types,
-- sequences, rules and comments. Owners and privileges are left out, as with
-- pg_dump --no-owner --no-privileges.
WITH ns AS (
    SELECT oid, nspname FROM pg_namespace
     WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
       AND nspname NOT LIKE 'pg\_temp\_%' AND nspname NOT LIKE 'pg\_toast\_temp\_%'
),
rel AS (
    SELECT c.*, n.nspname FROM pg_class c JOIN ns n ON n.oid = c.relnamespace
),
-- Objects an extension created are the extension's, as pg_dump treats them.
ext_member AS (
    SELECT objid FROM pg_depend WHERE deptype = 'e'
)
SELECT line FROM (
    SELECT format('schema %I', nspname) FROM ns
    UNION ALL
    SELECT format('extension %I', extname) FROM pg_extension
    UNION ALL
    SELECT format('relation %I.%I kind=%s persistence=%s replica_identity=%s rls=%s/%s options=%s partition_bound=%s',
                  nspname, relname, relkind, relpersistence, relreplident, relrowsecurity,
                  relforcerowsecurity, coalesce(reloptions::text, ''),
                  coalesce(pg_get_expr(relpartbound, oid), ''))
      FROM rel WHERE relkind IN ('r', 'p', 'v', 'm', 'c', 'f', 'S')
    UNION ALL
    SELECT format('column %I.%I #%s %I %s not_null=%s identity=%s generated=%s default=%s collation=%s',
                  r.nspname, r.relname,
                  row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
                  a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity,
                  a.attgenerated, coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
                  coalesce(co.collname, ''))
      FROM rel r
      JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      LEFT JOIN pg_type t ON t.oid = a.atttypid
      LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> t.typcollation
     WHERE r.relkind IN ('r', 'p', 'v', 'm', 'c', 'f')
    UNION ALL
    SELECT format('inherits %I.%I from %s', r.nspname, r.relname, i.inhparent::regclass)
      FROM rel r JOIN pg_inherits i ON i.inhrelid = r.oid
    UNION ALL
    SELECT format('constraint %I on %s: %s validated=%s deferrable=%s/%s',
                  c.conname,
                  CASE WHEN c.conrelid <> 0 THEN c.conrelid::regclass::text
                       ELSE c.contypid::regtype::text END,
                  pg_get_constraintdef(c.oid), c.convalidated, c.condeferrable, c.condeferred)
      FROM pg_constraint c JOIN ns n ON n.oid = c.connamespace
    UNION ALL
    SELECT format('index %s valid=%s replica_identity=%s clustered=%s',
                  pg_get_indexdef(i.indexrelid), i.indisvalid, i.indisreplident, i.indisclustered)
      FROM pg_index i JOIN rel r ON r.oid = i.indexrelid
    UNION ALL
    SELECT format('trigger %s enabled=%s', pg_get_triggerdef(t.oid), t.tgenabled)
      FROM pg_trigger t JOIN rel r ON r.oid = t.tgrelid
     WHERE NOT t.tgisinternal
    UNION ALL
    SELECT format('rule %s', pg_get_ruledef(ru.oid))
      FROM pg_rewrite ru JOIN rel r ON r.oid = ru.ev_class
     WHERE ru.rulename <> '_RETURN'
    UNION ALL
    SELECT format('view %I.%I: %s', nspname, relname, pg_get_viewdef(oid))
      FROM rel WHERE relkind IN ('v', 'm')
    UNION ALL
    SELECT format('function %s', pg_get_functiondef(p.oid))
      FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace
     WHERE p.prokind IN ('f', 'p') AND p.oid NOT IN (SELECT objid FROM ext_member)
    UNION ALL
    SELECT format('enum %I.%I: %s', n.nspname, t.typname,
                  string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder))
      FROM pg_type t JOIN ns n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
     GROUP BY n.nspname, t.typname
    UNION ALL
    SELECT format('domain %I.%I: %s not_null=%s default=%s', n.nspname, t.typname,
                  format_type(t.typbasetype, t.typtypmod), t.typnotnull,
                  coalesce(t.typdefault, ''))
      FROM pg_type t JOIN ns n ON n.oid = t.typnamespace
     WHERE t.typtype = 'd'
    UNION ALL
    SELECT format('sequence %I.%I %s start=%s increment=%s min=%s max=%s cache=%s cycle=%s',
                  r.nspname, r.relname, format_type(s.seqtypid, NULL), s.seqstart,
                  s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle)
      FROM pg_sequence s JOIN rel r ON r.oid = s.seqrelid
    UNION ALL
    SELECT format('sequence %s owned by %s.%I', d.objid::regclass, d.refobjid::regclass, a.attname)
      FROM pg_depend d
      JOIN rel r ON r.oid = d.objid AND r.relkind = 'S'
      JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
     WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
       AND d.deptype IN ('a', 'i')
    UNION ALL
    SELECT format('comment on %s: %s', pg_describe_object(d.classoid, d.objoid, d.objsubid),
                  d.description)
      FROM pg_description d
     WHERE d.objoid >= 16384 AND d.objoid NOT IN (SELECT objid FROM ext_member)
) AS facts (line)
ORDER BY line COLLATE "C"
