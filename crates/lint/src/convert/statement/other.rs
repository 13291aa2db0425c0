//! DROP, RENAME, COMMENT ON and UPDATE.

use super::*;

impl Cx<'_> {
    pub(super) fn drop(&mut self, span: Span, d: &protobuf::DropStmt) {
        let kind = ObjectType::try_from(d.remove_type).unwrap_or(ObjectType::Undefined);
        if !matches!(kind, ObjectType::ObjectIndex | ObjectType::ObjectTable) {
            return self.keep(
                span,
                "no tandem operation drops this kind of object; it runs as written at start",
                String::new(),
            );
        }
        for o in &d.objects {
            let Some(NodeEnum::List(l)) = o.node.as_ref() else {
                continue;
            };
            let name = tree::strings(&l.items).pop().unwrap_or_default();
            let op = if kind == ObjectType::ObjectIndex {
                Operation::DropIndex(DropIndex { name })
            } else {
                Operation::DropTable(DropTable { name })
            };
            // `DROP INDEX IF EXISTS` before building the same index again is the retry idiom
            // for a build that failed and left an INVALID index: `fold` hands it to tandem.
            if d.missing_ok {
                if let Operation::DropIndex(DropIndex { name }) = op {
                    self.items.push(Item {
                        span,
                        draft: Draft::DropIndexIfExists { name },
                        notes: Vec::new(),
                        not_valid: None,
                    });
                    continue;
                }
            }
            let item = self.push(span, op);
            if d.missing_ok {
                item.notes.push((
                    NoteKind::Info,
                    "IF EXISTS dropped: tandem refuses to drop what does not exist".into(),
                ));
            }
            if d.behavior == DropBehavior::DropCascade as i32 {
                item.notes.push((
                    NoteKind::Warning,
                    "CASCADE dropped: tandem drops only this object; drop what depends on it first"
                        .into(),
                ));
            }
        }
    }

    pub(super) fn rename(&mut self, span: Span, r: &protobuf::RenameStmt) {
        let table = r
            .relation
            .as_ref()
            .map(|r| r.relname.clone())
            .unwrap_or_default();
        let kind = ObjectType::try_from(r.rename_type).unwrap_or(ObjectType::Undefined);
        let op =
            match kind {
                ObjectType::ObjectTable => Operation::RenameTable(RenameTable {
                    from: table,
                    to: r.newname.clone(),
                }),
                ObjectType::ObjectColumn if r.relation_type == ObjectType::ObjectTable as i32 => {
                    Operation::RenameColumn(RenameColumn {
                        table,
                        from: r.subname.clone(),
                        to: r.newname.clone(),
                    })
                }
                ObjectType::ObjectTabconstraint => Operation::RenameConstraint(RenameConstraint {
                    table,
                    from: r.subname.clone(),
                    to: r.newname.clone(),
                }),
                _ => return self.keep(
                    span,
                    "no tandem operation renames this kind of object; it runs as written at start",
                    String::new(),
                ),
            };
        self.push(span, op);
    }

    pub(super) fn comment(&mut self, span: Span, c: &protobuf::CommentStmt) {
        let kind = ObjectType::try_from(c.objtype).unwrap_or(ObjectType::Undefined);
        let names = match c.object.as_deref().and_then(|o| o.node.as_ref()) {
            Some(NodeEnum::List(l)) => tree::strings(&l.items),
            _ => Vec::new(),
        };
        let comment = (!c.comment.is_empty()).then(|| c.comment.clone());
        match (kind, names.as_slice()) {
            (ObjectType::ObjectColumn, [.., table, column]) => {
                self.push(
                    span,
                    Operation::AlterColumn(AlterColumn {
                        table: table.clone(),
                        column: column.clone(),
                        name: None,
                        data_type: None,
                        nullable: None,
                        check: None,
                        unique: None,
                        references: None,
                        default: Nullable::Absent,
                        comment: comment.map_or(Nullable::Null, Nullable::Value),
                        up: String::new(),
                        down: String::new(),
                    }),
                );
            }
            (ObjectType::ObjectTable, [.., table]) => self.items.push(Item {
                span,
                draft: Draft::TableComment {
                    table: table.clone(),
                    comment,
                    sql: self.text(span),
                },
                notes: Vec::new(),
                not_valid: None,
            }),
            _ => self.keep(
                span,
                "no tandem operation comments this kind of object; COMMENT ON blocks no reads or writes for long",
                String::new(),
            ),
        }
    }

    pub(super) fn update(&mut self, span: Span, u: &protobuf::UpdateStmt) {
        let table = u
            .relation
            .as_ref()
            .map(|r| r.relname.clone())
            .unwrap_or_default();
        let single = match u.target_list.as_slice() {
            [t] => match t.node.as_ref() {
                Some(NodeEnum::ResTarget(r)) if r.indirection.is_empty() => r
                    .val
                    .as_deref()
                    .and_then(tree::expr)
                    .map(|v| (r.name.clone(), v)),
                _ => None,
            },
            _ => None,
        };
        let only_nulls =
            |column: &str| match u.where_clause.as_deref().and_then(|w| w.node.as_ref()) {
                None => Some(false),
                Some(NodeEnum::NullTest(t))
                    if t.nulltesttype == protobuf::NullTestType::IsNull as i32 =>
                {
                    match t.arg.as_deref().and_then(|a| a.node.as_ref()) {
                        Some(NodeEnum::ColumnRef(r))
                            if tree::strings(&r.fields).last().map(String::as_str)
                                == Some(column) =>
                        {
                            Some(true)
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
        let plain =
            u.from_clause.is_empty() && u.returning_clause.is_none() && u.with_clause.is_none();
        match single {
            Some((column, value)) if plain => match only_nulls(&column) {
                Some(only_nulls) => self.items.push(Item {
                    span,
                    draft: Draft::Backfill {
                        table,
                        column,
                        value,
                        only_nulls,
                        sql: self.text(span),
                    },
                    notes: Vec::new(),
                    not_valid: None,
                }),
                None => self.keep(span, "an UPDATE with a condition other than `column IS NULL` is data, not schema; it runs as written at start, in one transaction", String::new()),
            },
            _ => self.keep(span, "an UPDATE of several columns, or with FROM, RETURNING or WITH, is data, not schema; it runs as written at start, in one transaction", String::new()),
        }
    }
}
