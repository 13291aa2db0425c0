//! Rendering of column definitions, constraint clauses and index elements. Identifiers always go
//! through `quote_ident`; types, defaults and expressions are SQL the migration's author wrote.

use tandem_model::operation::{
    CheckConstraint, ColumnDef, ConstraintType, ForeignKeyReference, IndexField, IndexParameters,
    NullsOrder, SortOrder, TableConstraint, TableForeignKeyReference,
};
use tandem_model::{qualified, quote_ident};

/// `"name" type [GENERATED ...] [DEFAULT ...] [NOT NULL]`, without constraints.
pub fn column_definition(col: &ColumnDef, not_null: bool) -> String {
    let mut sql = format!("{} {}", quote_ident(&col.name), col.data_type);
    if let Some(g) = &col.generated {
        if let Some(id) = &g.identity {
            sql.push_str(&format!(
                " GENERATED {} AS IDENTITY",
                id.user_specified_values.sql()
            ));
            if !id.sequence_options.trim().is_empty() {
                sql.push_str(&format!(" ({})", id.sequence_options));
            }
        } else if !g.expression.is_empty() {
            sql.push_str(&format!(" GENERATED ALWAYS AS ({}) STORED", g.expression));
        }
    }
    if let Some(d) = &col.default {
        sql.push_str(&format!(" DEFAULT {d}"));
    }
    if not_null {
        sql.push_str(" NOT NULL");
    }
    sql
}

pub fn check_clause(c: &CheckConstraint) -> String {
    format!(
        "CONSTRAINT {} CHECK ({}){}",
        quote_ident(&c.name),
        c.constraint,
        if c.no_inherit { " NO INHERIT" } else { "" }
    )
}

/// `CONSTRAINT name FOREIGN KEY (col) REFERENCES ...` for a column-level reference.
pub fn foreign_key_clause(schema: &str, column: &str, r: &ForeignKeyReference) -> String {
    let mut sql = format!(
        "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) MATCH {} ON DELETE {} ON UPDATE {}",
        quote_ident(&r.name),
        quote_ident(column),
        qualified(schema, &r.table),
        quote_ident(&r.column),
        r.match_type.sql(),
        r.on_delete.sql(),
        r.on_update.sql()
    );
    if r.deferrable {
        sql.push_str(" DEFERRABLE");
        if r.initially_deferred {
            sql.push_str(" INITIALLY DEFERRED");
        }
    }
    sql
}

pub fn ident_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ")
}

fn index_parameters(p: &Option<IndexParameters>) -> String {
    let Some(p) = p else { return String::new() };
    let mut sql = String::new();
    if !p.include_columns.is_empty() {
        sql.push_str(&format!(" INCLUDE ({})", ident_list(&p.include_columns)));
    }
    if !p.storage_parameters.trim().is_empty() {
        sql.push_str(&format!(" WITH ({})", p.storage_parameters));
    }
    if !p.tablespace.trim().is_empty() {
        sql.push_str(&format!(
            " USING INDEX TABLESPACE {}",
            quote_ident(&p.tablespace)
        ));
    }
    sql
}

fn deferrable(d: bool, initially_deferred: bool) -> &'static str {
    match (d, initially_deferred) {
        (false, _) => "",
        (true, false) => " DEFERRABLE",
        (true, true) => " DEFERRABLE INITIALLY DEFERRED",
    }
}

/// `ON DELETE` action of a table-level foreign key, with its column list for SET NULL/DEFAULT.
pub fn on_delete_clause(r: &TableForeignKeyReference) -> String {
    if r.on_delete_set_columns.is_empty() {
        r.on_delete.sql().to_string()
    } else {
        format!(
            "{} ({})",
            r.on_delete.sql(),
            ident_list(&r.on_delete_set_columns)
        )
    }
}

/// A table constraint of `create_table`.
pub fn table_constraint(schema: &str, c: &TableConstraint) -> String {
    let name = quote_ident(&c.name);
    match c.kind {
        ConstraintType::Check => format!(
            "CONSTRAINT {name} CHECK ({}){}",
            c.check,
            if c.no_inherit { " NO INHERIT" } else { "" }
        ),
        ConstraintType::Unique => format!(
            "CONSTRAINT {name} UNIQUE{} ({}){}{}",
            if c.nulls_not_distinct {
                " NULLS NOT DISTINCT"
            } else {
                ""
            },
            ident_list(&c.columns),
            index_parameters(&c.index_parameters),
            deferrable(c.deferrable, c.initially_deferred)
        ),
        ConstraintType::PrimaryKey => format!(
            "CONSTRAINT {name} PRIMARY KEY ({}){}{}",
            ident_list(&c.columns),
            index_parameters(&c.index_parameters),
            deferrable(c.deferrable, c.initially_deferred)
        ),
        ConstraintType::ForeignKey => {
            let r = c
                .references
                .as_ref()
                .expect("validated: foreign key has references");
            let on_delete = on_delete_clause(r);
            format!(
                "CONSTRAINT {name} FOREIGN KEY ({}) REFERENCES {} ({}) MATCH {} ON DELETE {on_delete} ON UPDATE {}{}",
                ident_list(&c.columns),
                qualified(schema, &r.table),
                ident_list(&r.columns),
                r.match_type.sql(),
                r.on_update.sql(),
                deferrable(c.deferrable, c.initially_deferred)
            )
        }
        ConstraintType::Exclude => {
            let e = c.exclude.as_ref().expect("validated: exclude has elements");
            let method = if e.index_method.is_empty() {
                "btree"
            } else {
                &e.index_method
            };
            let mut sql = format!(
                "CONSTRAINT {name} EXCLUDE USING {} ({}){}",
                quote_ident(method),
                e.elements,
                index_parameters(&c.index_parameters)
            );
            if !e.predicate.trim().is_empty() {
                sql.push_str(&format!(" WHERE ({})", e.predicate));
            }
            sql.push_str(deferrable(c.deferrable, c.initially_deferred));
            sql
        }
    }
}

/// One element of an index: column, collation, operator class, order.
pub fn index_element(f: &IndexField) -> String {
    let mut sql = quote_ident(&f.column);
    if !f.collate.is_empty() {
        sql.push_str(&format!(" COLLATE {}", quote_ident(&f.collate)));
    }
    if let Some(op) = &f.opclass {
        if !op.name.is_empty() {
            sql.push_str(&format!(" {}", quote_ident(&op.name)));
            if !op.params.is_empty() {
                sql.push_str(&format!(" ({})", op.params.join(", ")));
            }
        }
    }
    match f.sort {
        Some(SortOrder::Asc) => sql.push_str(" ASC"),
        Some(SortOrder::Desc) => sql.push_str(" DESC"),
        None => {}
    }
    match f.nulls {
        Some(NullsOrder::First) => sql.push_str(" NULLS FIRST"),
        Some(NullsOrder::Last) => sql.push_str(" NULLS LAST"),
        None => {}
    }
    sql
}
