//! CREATE TABLE: the table, its columns and its constraints.

use super::*;

impl Cx<'_> {
    pub(super) fn create_table(&mut self, span: Span, c: &protobuf::CreateStmt) {
        let rv = c.relation.as_ref();
        let table = rv.map(|r| r.relname.clone()).unwrap_or_default();
        let unsupported = if !c.inh_relations.is_empty() {
            Some("a table with INHERITS or PARTITION OF has no tandem operation")
        } else if c.partspec.is_some() || c.partbound.is_some() {
            Some("a partitioned table or partition has no tandem operation")
        } else if rv.is_some_and(|r| r.relpersistence != "p") {
            Some("a TEMPORARY or UNLOGGED table has no tandem operation")
        } else if c.of_typename.is_some()
            || !c.options.is_empty()
            || !c.tablespacename.is_empty()
            || !c.access_method.is_empty()
        {
            Some("create_table has no field for OF type, WITH options, TABLESPACE or USING")
        } else {
            None
        };
        if let Some(why) = unsupported {
            return self.keep(
                span,
                why,
                format!("DROP TABLE IF EXISTS {}", quote_ident(&table)),
            );
        }
        match self.table_definition(&table, c) {
            Ok(op) => {
                let pk = op
                    .columns
                    .iter()
                    .filter(|c| c.pk)
                    .map(|c| c.name.clone())
                    .chain(
                        op.constraints
                            .iter()
                            .filter(|c| c.kind == ConstraintType::PrimaryKey)
                            .flat_map(|c| c.columns.clone()),
                    )
                    .collect();
                self.created.insert(table.clone(), pk);
                let item = self.push(span, Operation::CreateTable(op));
                if c.if_not_exists {
                    item.notes.push((
                        NoteKind::Info,
                        "IF NOT EXISTS dropped: tandem refuses a table that already exists".into(),
                    ));
                }
            }
            Err(why) => self.keep(
                span,
                &why,
                format!("DROP TABLE IF EXISTS {}", quote_ident(&table)),
            ),
        }
    }

    pub(super) fn table_definition(
        &mut self,
        table: &str,
        c: &protobuf::CreateStmt,
    ) -> Result<CreateTable, String> {
        let mut columns = Vec::new();
        let mut constraints = Vec::new();
        for elt in &c.table_elts {
            match elt.node.as_ref() {
                Some(NodeEnum::ColumnDef(col)) => {
                    let (def, extra) = self.column(table, col, true)?;
                    columns.push(def);
                    constraints.extend(extra);
                }
                Some(NodeEnum::Constraint(con)) => {
                    constraints.push(self.table_constraint(table, con)?);
                }
                _ => return Err("LIKE has no field in create_table".into()),
            }
        }
        // A table-level primary key over one column is the column's `pk`, as the SQL's
        // inline form would be; named ones stay constraints to keep their names.
        let pk_count = columns.iter().filter(|c| c.pk).count();
        if pk_count > 1 {
            return Err("more than one PRIMARY KEY".into());
        }
        if columns.is_empty() {
            return Err("create_table needs at least one column".into());
        }
        Ok(CreateTable {
            name: table.to_string(),
            columns,
            constraints,
            comment: None,
        })
    }

    /// A column of CREATE TABLE (`in_create`) or ADD COLUMN, with the table constraints its
    /// inline clauses become when they cannot stay on the column.
    pub(super) fn column(
        &mut self,
        table: &str,
        col: &protobuf::ColumnDef,
        in_create: bool,
    ) -> Result<(ColumnDef, Vec<TableConstraint>), String> {
        if col.coll_clause.is_some() || !col.compression.is_empty() || !col.storage.is_empty() {
            return Err(
                "a column's COLLATE, COMPRESSION or STORAGE has no field in tandem's column".into(),
            );
        }
        let data_type = col
            .type_name
            .as_ref()
            .and_then(tree::type_name)
            .ok_or("the column's type could not be read")?;
        let mut def = ColumnDef {
            name: col.colname.clone(),
            data_type,
            nullable: !col.is_not_null,
            pk: false,
            unique: false,
            default: col.raw_default.as_deref().and_then(tree::expr),
            check: None,
            references: None,
            comment: None,
            generated: None,
        };
        let mut extra = Vec::new();
        for con in &col.constraints {
            let Some(NodeEnum::Constraint(con)) = con.node.as_ref() else {
                continue;
            };
            let kind = ConstrType::try_from(con.contype).map_err(|_| "unknown constraint")?;
            if !con.conname.is_empty()
                && !matches!(
                    kind,
                    ConstrType::ConstrCheck
                        | ConstrType::ConstrForeign
                        | ConstrType::ConstrNotnull
                        | ConstrType::ConstrUnique
                        | ConstrType::ConstrPrimary
                )
            {
                return Err("a named column constraint of this kind has no field".into());
            }
            match kind {
                ConstrType::ConstrNull => def.nullable = true,
                ConstrType::ConstrNotnull => def.nullable = false,
                ConstrType::ConstrDefault => {
                    def.default = con.raw_expr.as_deref().and_then(tree::expr);
                }
                ConstrType::ConstrIdentity => {
                    if !con.options.is_empty() {
                        return Err("identity sequence options have no field here".into());
                    }
                    def.generated = Some(Generated {
                        expression: String::new(),
                        identity: Some(Identity {
                            sequence_options: String::new(),
                            user_specified_values: if con.generated_when == "d" {
                                IdentityKind::ByDefault
                            } else {
                                IdentityKind::Always
                            },
                        }),
                    });
                    def.nullable = false;
                }
                ConstrType::ConstrGenerated => {
                    let expression = con
                        .raw_expr
                        .as_deref()
                        .and_then(tree::expr)
                        .ok_or("the generation expression could not be read")?;
                    def.generated = Some(Generated {
                        expression,
                        identity: None,
                    });
                }
                ConstrType::ConstrPrimary => {
                    if !in_create {
                        return Err("add_column cannot add a primary key column".into());
                    }
                    if con.conname.is_empty() || con.conname == format!("{table}_pkey") {
                        def.pk = true;
                        self.names.take(&format!("{table}_pkey"));
                    } else {
                        extra.push(TableConstraint {
                            name: con.conname.clone(),
                            kind: ConstraintType::PrimaryKey,
                            columns: vec![def.name.clone()],
                            ..empty_constraint()
                        });
                    }
                    def.nullable = false;
                }
                ConstrType::ConstrUnique => {
                    let default_name =
                        crate::convert::names::object_name(table, Some(&def.name), "key");
                    if con.nulls_not_distinct || !con.options.is_empty() || con.deferrable {
                        return Err("UNIQUE with NULLS NOT DISTINCT, WITH or DEFERRABLE".into());
                    }
                    if con.conname.is_empty() || con.conname == default_name {
                        def.unique = true;
                        self.names.take(&default_name);
                    } else if in_create {
                        extra.push(TableConstraint {
                            name: con.conname.clone(),
                            kind: ConstraintType::Unique,
                            columns: vec![def.name.clone()],
                            ..empty_constraint()
                        });
                    } else {
                        return Err("a named UNIQUE on ADD COLUMN has no field; add the column, then the constraint".into());
                    }
                }
                ConstrType::ConstrCheck => {
                    let constraint = con
                        .raw_expr
                        .as_deref()
                        .and_then(tree::expr)
                        .ok_or("the check expression could not be read")?;
                    let name = if con.conname.is_empty() {
                        self.names.choose(table, Some(&def.name), "check")
                    } else {
                        con.conname.clone()
                    };
                    if def.check.is_some() {
                        return Err("two CHECKs on one column".into());
                    }
                    def.check = Some(CheckConstraint {
                        name,
                        constraint,
                        no_inherit: con.is_no_inherit,
                    });
                }
                ConstrType::ConstrForeign => {
                    let target = con.pktable.as_ref().map(|r| r.relname.clone());
                    let target = target.ok_or("REFERENCES without a table")?;
                    let column = match tree::strings(&con.pk_attrs).as_slice() {
                        [one] => one.clone(),
                        [] => match self.created.get(&target).map(Vec::as_slice) {
                            Some([pk]) => pk.clone(),
                            _ => {
                                return Err(format!(
                                    "REFERENCES {target} names no column, and {target}'s primary key is not created in this file; write the column"
                                ))
                            }
                        },
                        _ => return Err("a column REFERENCES several columns".into()),
                    };
                    let name = if con.conname.is_empty() {
                        self.names.choose(table, Some(&def.name), "fkey")
                    } else {
                        con.conname.clone()
                    };
                    def.references = Some(ForeignKeyReference {
                        name,
                        table: target,
                        column,
                        match_type: match_type(&con.fk_matchtype),
                        on_delete: fk_action(&con.fk_del_action),
                        on_update: fk_action(&con.fk_upd_action),
                        deferrable: con.deferrable,
                        initially_deferred: con.initdeferred,
                    });
                }
                // DEFERRABLE and INITIALLY DEFERRED follow the REFERENCES they qualify.
                ConstrType::ConstrAttrDeferrable
                | ConstrType::ConstrAttrDeferred
                | ConstrType::ConstrAttrNotDeferrable
                | ConstrType::ConstrAttrImmediate => {
                    let Some(r) = def.references.as_mut() else {
                        return Err(
                            "DEFERRABLE on a column constraint other than REFERENCES".into()
                        );
                    };
                    match kind {
                        ConstrType::ConstrAttrDeferrable => r.deferrable = true,
                        ConstrType::ConstrAttrDeferred => {
                            r.deferrable = true;
                            r.initially_deferred = true;
                        }
                        ConstrType::ConstrAttrNotDeferrable => r.deferrable = false,
                        _ => r.initially_deferred = false,
                    }
                }
                _ => return Err("this column constraint has no field in tandem's column".into()),
            }
        }
        if def.pk {
            def.nullable = false;
        }
        Ok((def, extra))
    }

    pub(super) fn table_constraint(
        &mut self,
        table: &str,
        con: &protobuf::Constraint,
    ) -> Result<TableConstraint, String> {
        let kind = ConstrType::try_from(con.contype).map_err(|_| "unknown constraint")?;
        let keys = tree::strings(&con.keys);
        let parameters = |con: &protobuf::Constraint| -> Result<Option<IndexParameters>, String> {
            let storage_parameters =
                tree::storage_parameters(&con.options).ok_or("WITH options could not be read")?;
            let include_columns = tree::strings(&con.including);
            if !con.indexspace.is_empty() {
                return Err("USING INDEX TABLESPACE has no field".into());
            }
            Ok(
                (!storage_parameters.is_empty() || !include_columns.is_empty()).then(|| {
                    IndexParameters {
                        tablespace: String::new(),
                        storage_parameters,
                        include_columns,
                    }
                }),
            )
        };
        let named = |names: &mut Taken, columns: Option<&[String]>, label: &str| {
            if con.conname.is_empty() {
                names.choose(table, columns.map(columns_part).as_deref(), label)
            } else {
                names.take(&con.conname);
                con.conname.clone()
            }
        };
        Ok(match kind {
            ConstrType::ConstrPrimary => TableConstraint {
                name: named(&mut self.names, None, "pkey"),
                kind: ConstraintType::PrimaryKey,
                columns: keys,
                deferrable: con.deferrable,
                initially_deferred: con.initdeferred,
                index_parameters: parameters(con)?,
                ..empty_constraint()
            },
            ConstrType::ConstrUnique => TableConstraint {
                name: named(&mut self.names, Some(&keys), "key"),
                kind: ConstraintType::Unique,
                columns: keys,
                deferrable: con.deferrable,
                initially_deferred: con.initdeferred,
                nulls_not_distinct: con.nulls_not_distinct,
                index_parameters: parameters(con)?,
                ..empty_constraint()
            },
            ConstrType::ConstrCheck => {
                let expr = con.raw_expr.as_deref().ok_or("CHECK without expression")?;
                let refs = tree::column_refs(expr);
                let name = if con.conname.is_empty() {
                    let one = (refs.len() == 1).then(|| refs[0].clone());
                    self.names.choose(table, one.as_deref(), "check")
                } else {
                    con.conname.clone()
                };
                TableConstraint {
                    name,
                    kind: ConstraintType::Check,
                    columns: refs,
                    no_inherit: con.is_no_inherit,
                    check: tree::expr(expr).ok_or("the check expression could not be read")?,
                    ..empty_constraint()
                }
            }
            ConstrType::ConstrForeign => {
                let columns = tree::strings(&con.fk_attrs);
                let target = con
                    .pktable
                    .as_ref()
                    .map(|r| r.relname.clone())
                    .ok_or("FOREIGN KEY without a table")?;
                let mut target_columns = tree::strings(&con.pk_attrs);
                if target_columns.is_empty() {
                    target_columns = self
                        .created
                        .get(&target)
                        .cloned()
                        .filter(|pk| pk.len() == columns.len())
                        .ok_or_else(|| format!("REFERENCES {target} names no columns, and {target}'s primary key is not created in this file; write them"))?;
                }
                TableConstraint {
                    name: named(&mut self.names, Some(&columns), "fkey"),
                    kind: ConstraintType::ForeignKey,
                    columns,
                    deferrable: con.deferrable,
                    initially_deferred: con.initdeferred,
                    references: Some(TableForeignKeyReference {
                        table: target,
                        columns: target_columns,
                        match_type: match_type(&con.fk_matchtype),
                        on_delete: fk_action(&con.fk_del_action),
                        on_update: fk_action(&con.fk_upd_action),
                        on_delete_set_columns: tree::strings(&con.fk_del_set_cols),
                    }),
                    ..empty_constraint()
                }
            }
            _ => return Err("this table constraint has no field in create_table".into()),
        })
    }
}
