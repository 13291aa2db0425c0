//! CREATE INDEX.

use super::*;

impl Cx<'_> {
    pub(super) fn create_index(&mut self, span: Span, i: &protobuf::IndexStmt) {
        let table = i
            .relation
            .as_ref()
            .map(|r| r.relname.clone())
            .unwrap_or_default();
        let mut columns = Vec::new();
        let mut names = Vec::new();
        let mut plain = true;
        for p in &i.index_params {
            let Some(NodeEnum::IndexElem(e)) = p.node.as_ref() else {
                plain = false;
                continue;
            };
            if e.name.is_empty() || !e.opclassopts.is_empty() {
                names.push(
                    e.expr
                        .as_deref()
                        .map_or_else(|| "expr".into(), index_column_name),
                );
                plain = false;
                continue;
            }
            names.push(e.name.clone());
            let opclass = tree::strings(&e.opclass);
            columns.push(IndexField {
                column: e.name.clone(),
                collate: tree::strings(&e.collation).join("."),
                sort: match SortByDir::try_from(e.ordering) {
                    Ok(SortByDir::SortbyAsc) => Some(SortOrder::Asc),
                    Ok(SortByDir::SortbyDesc) => Some(SortOrder::Desc),
                    _ => None,
                },
                opclass: (!opclass.is_empty()).then(|| OpClass {
                    name: opclass.join("."),
                    params: Vec::new(),
                }),
                nulls: match SortByNulls::try_from(e.nulls_ordering) {
                    Ok(SortByNulls::SortbyNullsFirst) => Some(NullsOrder::First),
                    Ok(SortByNulls::SortbyNullsLast) => Some(NullsOrder::Last),
                    _ => None,
                },
            });
        }
        let name = if i.idxname.is_empty() {
            self.names
                .choose(&table, Some(&columns_part(&names)), "idx")
        } else {
            self.names.take(&i.idxname);
            i.idxname.clone()
        };
        let method = match i.access_method.as_str() {
            "" | "btree" => Some(IndexMethod::Btree),
            "hash" => Some(IndexMethod::Hash),
            "gist" => Some(IndexMethod::Gist),
            "spgist" => Some(IndexMethod::Spgist),
            "gin" => Some(IndexMethod::Gin),
            "brin" => Some(IndexMethod::Brin),
            _ => None,
        };
        let storage = tree::storage_parameters(&i.options);
        let why = if !plain {
            Some("an index on expressions has no tandem operation (create_index takes columns)")
        } else if !i.index_including_params.is_empty() {
            Some("INCLUDE has no field in create_index")
        } else if i.nulls_not_distinct || !i.table_space.is_empty() {
            Some("NULLS NOT DISTINCT and TABLESPACE have no field in create_index")
        } else if method.is_none() || storage.is_none() {
            Some("the access method or WITH options have no field in create_index")
        } else {
            None
        };
        let down = format!("DROP INDEX CONCURRENTLY IF EXISTS {}", quote_ident(&name));
        if let Some(why) = why {
            // Built concurrently even so, unless the table is new in this file.
            let mut concurrent = i.clone();
            concurrent.idxname = name.clone();
            concurrent.concurrent = !self.created.contains_key(&table);
            let up = tree::statement(&NodeEnum::IndexStmt(Box::new(concurrent)))
                .unwrap_or_else(|| self.text(span));
            let down = if self.created.contains_key(&table) {
                String::new()
            } else {
                down
            };
            return self.keep_sql(span, up, why, down);
        }
        let item = self.push(
            span,
            Operation::CreateIndex(CreateIndex {
                name,
                table,
                columns,
                method: method.unwrap_or_default(),
                unique: i.unique,
                predicate: i
                    .where_clause
                    .as_deref()
                    .and_then(tree::expr)
                    .unwrap_or_default(),
                storage_parameters: storage.unwrap_or_default(),
            }),
        );
        if i.if_not_exists {
            item.notes.push((
                NoteKind::Info,
                "IF NOT EXISTS dropped: tandem refuses an index that exists (an INVALID one left by a failed build is rebuilt)".into(),
            ));
        }
    }
}
