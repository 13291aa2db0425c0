//! ALTER TABLE: each action, and the constraints it adds.

use super::*;

impl Cx<'_> {
    pub(super) fn alter_table(&mut self, span: Span, a: &protobuf::AlterTableStmt) {
        let table = a
            .relation
            .as_ref()
            .map(|r| r.relname.clone())
            .unwrap_or_default();
        let several = a.cmds.len() > 1;
        for cmd in &a.cmds {
            let Some(NodeEnum::AlterTableCmd(cmd)) = cmd.node.as_ref() else {
                continue;
            };
            // The action alone, for notes and for what stays `sql`.
            let alone = || {
                let mut one = a.clone();
                one.cmds = vec![Node {
                    node: Some(NodeEnum::AlterTableCmd(cmd.clone())),
                }];
                tree::statement(&NodeEnum::AlterTableStmt(one)).unwrap_or_default()
            };
            let text = if several { alone() } else { self.text(span) };
            if let Err(why) = self.alter_action(span, &table, cmd, &text, a.missing_ok) {
                // A column added as written is dropped again on rollback.
                let added = match cmd.def.as_deref().and_then(|d| d.node.as_ref()) {
                    Some(NodeEnum::ColumnDef(c))
                        if cmd.subtype == AlterTableType::AtAddColumn as i32 =>
                    {
                        format!(
                            "ALTER TABLE {} DROP COLUMN IF EXISTS {}",
                            quote_ident(&table),
                            quote_ident(&c.colname)
                        )
                    }
                    _ => String::new(),
                };
                self.keep_sql(span, text, &why, added);
            }
        }
    }

    pub(super) fn alter_action(
        &mut self,
        span: Span,
        table: &str,
        cmd: &protobuf::AlterTableCmd,
        text: &str,
        if_exists: bool,
    ) -> Result<(), String> {
        let def = cmd.def.as_deref().and_then(|d| d.node.as_ref());
        let column = cmd.name.clone();
        let alter = |column: &str| AlterColumn {
            table: table.to_string(),
            column: column.to_string(),
            name: None,
            data_type: None,
            nullable: None,
            check: None,
            unique: None,
            references: None,
            default: Nullable::Absent,
            comment: Nullable::Absent,
            up: String::new(),
            down: String::new(),
        };
        let subtype = AlterTableType::try_from(cmd.subtype).unwrap_or(AlterTableType::Undefined);
        let item = match subtype {
            AlterTableType::AtAddColumn => {
                let Some(NodeEnum::ColumnDef(col)) = def else {
                    return Err("unreadable ADD COLUMN".into());
                };
                let created = self.created.contains_key(table);
                let (column, extra) = self.column(table, col, false)?;
                if !extra.is_empty() {
                    return Err("constraints add_column has no field for".into());
                }
                if column.generated.is_some() && !created {
                    return Err("adding an identity or stored generated column fills every existing row, rewriting the table under an ACCESS EXCLUSIVE lock; add a plain column with `up` instead".into());
                }
                let needs_up = !column.nullable && column.default.is_none() && !created;
                let item = self.push(
                    span,
                    Operation::AddColumn(AddColumn {
                        table: table.to_string(),
                        column,
                        up: String::new(),
                    }),
                );
                if needs_up {
                    item.notes.push((NoteKind::Info, "NOT NULL without a default: on a table with rows, give `up` (the value for existing rows); `tandem validate` with a database checks".into()));
                }
                if cmd.missing_ok {
                    item.notes.push((
                        NoteKind::Info,
                        "IF NOT EXISTS dropped: tandem refuses a column that already exists".into(),
                    ));
                }
                item
            }
            AlterTableType::AtDropColumn => {
                let item = self.push(
                    span,
                    Operation::DropColumn(DropColumn {
                        table: table.to_string(),
                        column,
                        down: String::new(),
                    }),
                );
                item.notes.push((NoteKind::Info, "no `down`: if the column is NOT NULL without a default, give `down` (the value stored for the new version's inserts while the old version still reads it); `tandem validate` tells".into()));
                if cmd.behavior == DropBehavior::DropCascade as i32 {
                    item.notes.push((NoteKind::Warning, "CASCADE dropped: tandem drops only the column; drop what depends on it first".into()));
                }
                item
            }
            AlterTableType::AtAlterColumnType => {
                let Some(NodeEnum::ColumnDef(col)) = def else {
                    return Err("unreadable ALTER COLUMN TYPE".into());
                };
                if col.coll_clause.is_some() {
                    return Err("COLLATE in a type change has no field".into());
                }
                let ty = col
                    .type_name
                    .as_ref()
                    .and_then(tree::type_name)
                    .ok_or("the new type could not be read")?;
                let mut op = alter(&column);
                op.data_type = Some(ty);
                let using = col.raw_default.as_deref();
                let mut notes = Vec::new();
                match using {
                    Some(u) if !is_plain_cast_of(u, &column) => {
                        op.up = tree::expr(u).ok_or("the USING expression could not be read")?;
                        op.down = format!("{} {TODO_DOWN}", crate::convert::PLACEHOLDER);
                        notes.push((NoteKind::Todo, format!("write `down`: the old value of {column:?} computed from the new one (the inverse of `up`), which the old version reads for rows the new version writes")));
                    }
                    _ => notes.push((NoteKind::Info, "`up`/`down` left out: tandem casts the value to the new type and back; give `down` if new values do not cast back to the old type".into())),
                }
                let item = self.push(span, Operation::AlterColumn(op));
                item.notes.extend(notes);
                item
            }
            AlterTableType::AtSetNotNull | AlterTableType::AtDropNotNull => {
                let mut op = alter(&column);
                op.nullable = Some(subtype == AlterTableType::AtDropNotNull);
                self.push(span, Operation::AlterColumn(op))
            }
            AlterTableType::AtColumnDefault => {
                let mut op = alter(&column);
                op.default = match def {
                    None => Nullable::Null,
                    Some(_) => Nullable::Value(
                        cmd.def
                            .as_deref()
                            .and_then(tree::expr)
                            .ok_or("the default could not be read")?,
                    ),
                };
                self.push(span, Operation::AlterColumn(op))
            }
            AlterTableType::AtAddConstraint => {
                let Some(NodeEnum::Constraint(con)) = def else {
                    return Err("unreadable ADD CONSTRAINT".into());
                };
                return self.add_constraint(span, table, con, text);
            }
            AlterTableType::AtValidateConstraint => {
                self.items.push(Item {
                    span,
                    draft: Draft::Validate {
                        table: table.to_string(),
                        name: column,
                        sql: text.to_string(),
                    },
                    notes: Vec::new(),
                    not_valid: None,
                });
                return Ok(());
            }
            AlterTableType::AtDropConstraint => {
                let item = self.push(
                    span,
                    Operation::DropConstraint(DropConstraint {
                        table: table.to_string(),
                        name: column,
                        up: String::new(),
                        down: String::new(),
                    }),
                );
                if cmd.behavior == DropBehavior::DropCascade as i32 {
                    item.notes.push((NoteKind::Warning, "CASCADE dropped: tandem drops only the constraint; drop the foreign keys that depend on it first".into()));
                }
                item
            }
            AlterTableType::AtReplicaIdentity => {
                let Some(NodeEnum::ReplicaIdentityStmt(r)) = def else {
                    return Err("unreadable REPLICA IDENTITY".into());
                };
                let kind = match r.identity_type.as_str() {
                    "d" => "default",
                    "f" => "full",
                    "n" => "nothing",
                    "i" => "index",
                    _ => return Err("unknown REPLICA IDENTITY".into()),
                };
                self.push(
                    span,
                    Operation::SetReplicaIdentity(SetReplicaIdentity {
                        table: table.to_string(),
                        identity: ReplicaIdentity {
                            kind: kind.to_string(),
                            index: r.name.clone(),
                        },
                    }),
                )
            }
            _ => {
                return Err(
                    "no tandem operation does this ALTER TABLE action; it runs as written at start"
                        .into(),
                )
            }
        };
        if if_exists {
            item.notes.push((
                NoteKind::Info,
                "IF EXISTS dropped: tandem refuses a table that does not exist".into(),
            ));
        }
        Ok(())
    }

    pub(super) fn add_constraint(
        &mut self,
        span: Span,
        table: &str,
        con: &protobuf::Constraint,
        text: &str,
    ) -> Result<(), String> {
        let kind = ConstrType::try_from(con.contype).map_err(|_| "unknown constraint")?;
        let primary = kind == ConstrType::ConstrPrimary;
        if matches!(kind, ConstrType::ConstrUnique | ConstrType::ConstrPrimary)
            && !con.indexname.is_empty()
        {
            let name = if con.conname.is_empty() {
                con.indexname.clone()
            } else {
                con.conname.clone()
            };
            self.items.push(Item {
                span,
                draft: Draft::UsingIndex {
                    table: table.to_string(),
                    name,
                    index: con.indexname.clone(),
                    primary,
                    sql: text.to_string(),
                },
                notes: Vec::new(),
                not_valid: None,
            });
            return Ok(());
        }
        let tc = self.table_constraint(table, con)?;
        if tc.deferrable && tc.kind != ConstraintType::ForeignKey {
            return Err(
                "a DEFERRABLE unique or primary key has no field in create_constraint".into(),
            );
        }
        if tc.nulls_not_distinct {
            return Err("NULLS NOT DISTINCT has no field in create_constraint".into());
        }
        if tc.columns.is_empty() {
            return Err("a constraint that reads no column has no tandem operation".into());
        }
        let op = match (tc.kind, tc.references) {
            // A deferrable foreign key over one column has a form: alter_column's `references`.
            (ConstraintType::ForeignKey, Some(r)) if tc.deferrable => {
                let ([column], [target]) = (tc.columns.as_slice(), r.columns.as_slice()) else {
                    return Err("a DEFERRABLE foreign key over several columns has no field".into());
                };
                if !r.on_delete_set_columns.is_empty() {
                    return Err("ON DELETE SET NULL (columns) has no field here".into());
                }
                Operation::AlterColumn(AlterColumn {
                    table: table.to_string(),
                    column: column.clone(),
                    name: None,
                    data_type: None,
                    nullable: None,
                    check: None,
                    unique: None,
                    references: Some(ForeignKeyReference {
                        name: tc.name.clone(),
                        table: r.table,
                        column: target.clone(),
                        match_type: r.match_type,
                        on_delete: r.on_delete,
                        on_update: r.on_update,
                        deferrable: true,
                        initially_deferred: tc.initially_deferred,
                    }),
                    default: Nullable::Absent,
                    comment: Nullable::Absent,
                    up: String::new(),
                    down: String::new(),
                })
            }
            (kind, references) => Operation::CreateConstraint(CreateConstraint {
                table: table.to_string(),
                name: tc.name.clone(),
                kind: match kind {
                    ConstraintType::Unique => CreateConstraintType::Unique,
                    ConstraintType::Check => CreateConstraintType::Check,
                    ConstraintType::PrimaryKey => CreateConstraintType::PrimaryKey,
                    ConstraintType::ForeignKey => CreateConstraintType::ForeignKey,
                    ConstraintType::Exclude => {
                        return Err("an exclusion constraint has no tandem operation".into())
                    }
                },
                columns: tc.columns,
                check: (kind == ConstraintType::Check).then_some(tc.check),
                no_inherit: tc.no_inherit,
                index_parameters: tc.index_parameters,
                references,
                up: ColumnExprs::new(),
                down: ColumnExprs::new(),
            }),
        };
        let item = self.push(span, op);
        if con.skip_validation {
            item.not_valid = Some(tc.name);
        }
        Ok(())
    }
}
