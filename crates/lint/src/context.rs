//! What the linter knows when it reaches a statement: whether a transaction is open, which
//! tables earlier statements of the same file created, which session settings were made, which
//! constraints were added NOT VALID, and which lock the open transaction already holds; and,
//! carried from file to file of a run, what the schema is: column types and NOT NULL columns.

use crate::model::*;
use std::collections::{HashMap, HashSet};

/// Options that change what is safe.
#[derive(Debug, Clone)]
pub struct Options {
    /// The PostgreSQL major version the migration will run on.
    pub pg_version: u32,
    /// The file runs as one transaction (psql `-1`, or a runner that wraps each migration, or
    /// sends the file as one multi-statement query): decided per file from its runner.
    pub single_transaction: bool,
}

/// How long a table created by a file of the run counts as new (unused by the application).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NewTables {
    /// Only in the file that creates it: the later files were most likely deployed later, when
    /// the application already used the table.
    #[default]
    File,
    /// For the whole run, as when every file is applied together to a fresh database or in one
    /// deploy (the files of one pull request).
    Run,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pg_version: 15,
            single_transaction: false,
        }
    }
}

/// The state before a statement.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub in_transaction: bool,
    /// In force for the next statement (a `SET LOCAL` lasts until the transaction ends).
    pub lock_timeout: bool,
    pub statement_timeout: bool,
    /// What plain `SET` made them, which is what remains after the transaction.
    session_lock_timeout: bool,
    session_statement_timeout: bool,
    /// Tables created earlier in this file: nothing uses them yet.
    pub created_tables: HashSet<String>,
    /// Indexes created earlier in this file, with whether they were built concurrently.
    pub created_indexes: HashMap<String, bool>,
    /// Column types that earlier statements of this file defined.
    pub column_types: HashMap<(String, String), TypeSpec>,
    /// Constraints added NOT VALID in the open transaction.
    pub not_valid_in_transaction: HashSet<String>,
    /// `CHECK (col IS NOT NULL)` constraints added NOT VALID: name → (table, column).
    pub not_null_checks: HashMap<String, (String, String)>,
    /// (table, column) pairs with a validated `CHECK (col IS NOT NULL)`.
    pub validated_not_null: HashSet<(String, String)>,
    /// The table an earlier statement of the open transaction locked ACCESS EXCLUSIVE.
    pub access_exclusive: Option<String>,
    /// Statements (other than SET, COMMIT, ROLLBACK) run since that lock was taken.
    pub statements_after_access_exclusive: usize,
    /// An earlier statement took a lock that blocks the application without a lock_timeout.
    pub strong_lock_without_timeout: bool,
    /// (table, column) pairs known to be NOT NULL, from earlier statements, earlier files of the
    /// run, or the starting schema.
    pub not_null: HashSet<(String, String)>,
    /// The planner's row estimate of tables of the starting schema, by bare name.
    pub row_estimates: HashMap<String, i64>,
    /// Inside a PL/pgSQL body: a COMMIT there starts the next transaction at once.
    in_body: bool,
    /// The DO block being linted opened the transaction it runs in.
    body_opened_transaction: bool,
    /// The tables such locks were taken on, including the tables new foreign keys reference.
    pub locked_without_timeout: HashSet<String>,
    /// Types and domains created earlier in this file.
    pub created_types: HashSet<String>,
    /// Columns earlier statements of this file added to tables it did not create.
    pub added_columns: HashMap<(String, String), ColumnSpec>,
    /// Columns this file made NOT NULL (added NOT NULL or SET NOT NULL).
    pub not_null_columns: HashSet<(String, String)>,
}

impl State {
    pub fn new(options: &Options) -> State {
        State {
            in_transaction: options.single_transaction,
            ..State::default()
        }
    }

    /// The state a run starts from when the schema is known: its tables exist (none is new),
    /// with their column types and NOT NULL columns.
    pub fn from_schema(schema: &tandem_model::Schema, options: &Options) -> State {
        let mut state = State::new(options);
        for table in schema.tables.values() {
            for column in &table.columns {
                let key = (table.name.clone(), column.name.clone());
                if let Some(ty) = crate::parse::type_spec_of(&column.data_type) {
                    state.column_types.insert(key.clone(), ty);
                }
                if !column.nullable {
                    state.not_null.insert(key);
                }
            }
        }
        state
    }

    /// The state the next file of a run starts from: the schema carries over; the session and
    /// the transaction do not (each file is a new session for most runners), nor, unless
    /// `new_tables` says so, which tables count as new.
    pub fn next_file(&self, options: &Options, new_tables: NewTables) -> State {
        let mut next = State::new(options);
        next.column_types = self.column_types.clone();
        next.not_null = self.not_null.clone();
        next.not_null_checks = self.not_null_checks.clone();
        next.validated_not_null = self.validated_not_null.clone();
        next.row_estimates = self.row_estimates.clone();
        if new_tables == NewTables::Run {
            next.created_tables = self.created_tables.clone();
            next.created_indexes = self.created_indexes.clone();
        }
        next
    }

    /// Whether the column is known to be NOT NULL already (a SET NOT NULL on it does nothing).
    pub fn is_not_null(&self, table: &TableName, column: &str) -> bool {
        self.not_null
            .contains(&(table.name.clone(), column.to_string()))
    }

    /// Enters a PL/pgSQL body that runs now (a DO block): it is one statement, so it runs in a
    /// transaction, its own unless one is open.
    pub fn enter_body(&mut self) {
        self.body_opened_transaction = !self.in_transaction;
        self.in_transaction = true;
        self.in_body = true;
    }

    /// Leaves the DO block: the transaction it opened commits.
    pub fn leave_body(&mut self, options: &Options) {
        self.in_body = false;
        if self.body_opened_transaction {
            self.end_transaction(options);
        }
    }

    /// The state in which a function's body is linted: it runs inside its caller's statement,
    /// so always in a transaction, and what it does happens only when it is called.
    pub fn for_function_body(&self) -> State {
        let mut state = self.clone();
        state.in_transaction = true;
        state.in_body = true;
        state.body_opened_transaction = false;
        state
    }

    fn end_transaction(&mut self, options: &Options) {
        self.in_transaction = options.single_transaction || self.in_body;
        self.lock_timeout = self.session_lock_timeout;
        self.statement_timeout = self.session_statement_timeout;
        self.not_valid_in_transaction.clear();
        self.access_exclusive = None;
        self.statements_after_access_exclusive = 0;
    }

    pub fn is_new(&self, table: &TableName) -> bool {
        self.created_tables.contains(&table.name)
    }

    /// Whether a table or index of this bare name was created earlier in this file.
    pub fn is_new_relation(&self, name: &str) -> bool {
        let bare = name.rsplit('.').next().unwrap_or(name);
        self.created_tables.contains(bare) || self.created_indexes.contains_key(bare)
    }

    /// Moves the state past `stmt`.
    pub fn apply(&mut self, stmt: &Statement, options: &Options) {
        match &stmt.kind {
            StmtKind::Begin => self.in_transaction = true,
            StmtKind::Commit | StmtKind::Rollback => self.end_transaction(options),
            StmtKind::Set { name, value, local } => {
                let set = value.as_deref().is_some_and(|v| v != "0");
                let pair = match name.as_str() {
                    "lock_timeout" => {
                        Some((&mut self.lock_timeout, &mut self.session_lock_timeout))
                    }
                    "statement_timeout" => Some((
                        &mut self.statement_timeout,
                        &mut self.session_statement_timeout,
                    )),
                    _ => None,
                };
                if let Some((now, session)) = pair {
                    *now = set;
                    // SET LOCAL outside a transaction block does nothing.
                    if !*local {
                        *session = set;
                    } else if !self.in_transaction {
                        *now = *session;
                    }
                }
            }
            StmtKind::CreateTable {
                table,
                columns,
                constraints,
            } => {
                self.forget_table(&table.name);
                self.created_tables.insert(table.name.clone());
                for c in columns {
                    self.column_types
                        .insert((table.name.clone(), c.name.clone()), c.ty.clone());
                    if c.not_null {
                        self.not_null.insert((table.name.clone(), c.name.clone()));
                    }
                }
                for c in constraints {
                    self.apply_action(table, &AlterAction::AddConstraint(c.clone()), true);
                }
            }
            StmtKind::DropTable { tables } => {
                for t in tables {
                    self.forget_table(&t.name);
                    self.created_tables.remove(&t.name);
                }
            }
            StmtKind::RenameColumn { table, column, to } => {
                let (old, new) = (
                    (table.name.clone(), column.clone()),
                    (table.name.clone(), to.clone()),
                );
                if let Some(ty) = self.column_types.remove(&old) {
                    self.column_types.insert(new.clone(), ty);
                }
                if self.not_null.remove(&old) {
                    self.not_null.insert(new.clone());
                }
                if self.validated_not_null.remove(&old) {
                    self.validated_not_null.insert(new);
                }
            }
            StmtKind::CreateIndex {
                name: Some(name),
                concurrently,
                ..
            } => {
                self.created_indexes.insert(name.clone(), *concurrently);
            }
            StmtKind::AlterTable { table, actions } => {
                let new = self.is_new(table);
                for action in actions {
                    self.apply_action(table, action, new);
                }
            }
            StmtKind::RenameTable { table, to } => {
                if self.created_tables.remove(&table.name) {
                    self.created_tables.insert(to.clone());
                }
                self.rename_table(&table.name, to);
            }
            StmtKind::CreateType { name } => {
                self.created_types.insert(name.clone());
            }
            _ => {}
        }
        if self.access_exclusive.is_some() && counts_as_work(&stmt.kind) {
            self.statements_after_access_exclusive += 1;
        }
        // A foreign key also locks the table it references.
        if !self.lock_timeout {
            for (_, t) in crate::locks::referenced_locks(&stmt.kind) {
                if !self.is_new_relation(&t) {
                    self.strong_lock_without_timeout = true;
                    self.locked_without_timeout.insert(t);
                }
            }
        }
        let lock = crate::locks::strongest_lock(&stmt.kind)
            .filter(|(_, table)| !self.is_new_relation(table));
        if let Some((mode, table)) = lock {
            if crate::locks::blocks_application(mode) && !self.lock_timeout {
                self.strong_lock_without_timeout = true;
                self.locked_without_timeout.insert(table.clone());
            }
            if self.in_transaction
                && mode == crate::locks::LockMode::AccessExclusive
                && self.access_exclusive.is_none()
            {
                self.access_exclusive = Some(table);
            }
        }
    }

    /// Forgets what is known of a table's columns (it is dropped or created anew).
    fn forget_table(&mut self, table: &str) {
        self.row_estimates.remove(table);
        self.column_types.retain(|(t, _), _| t != table);
        self.not_null.retain(|(t, _)| t != table);
        self.validated_not_null.retain(|(t, _)| t != table);
    }

    fn rename_table(&mut self, from: &str, to: &str) {
        if let Some(rows) = self.row_estimates.remove(from) {
            self.row_estimates.insert(to.to_string(), rows);
        }
        let moved = |set: &mut HashSet<(String, String)>| {
            *set = set
                .drain()
                .map(|(t, c)| (if t == from { to.to_string() } else { t }, c))
                .collect();
        };
        moved(&mut self.not_null);
        moved(&mut self.validated_not_null);
        self.column_types = self
            .column_types
            .drain()
            .map(|((t, c), ty)| ((if t == from { to.to_string() } else { t }, c), ty))
            .collect();
    }

    fn apply_action(&mut self, table: &TableName, action: &AlterAction, new_table: bool) {
        let key = |column: &str| (table.name.clone(), column.to_string());
        match action {
            AlterAction::AddColumn(c) => {
                self.column_types.insert(key(&c.name), c.ty.clone());
                if c.not_null {
                    self.not_null.insert(key(&c.name));
                    self.not_null_columns.insert(key(&c.name));
                }
                if !new_table {
                    self.added_columns.insert(key(&c.name), c.clone());
                }
            }
            AlterAction::DropColumn { column } => {
                self.column_types.remove(&key(column));
                self.not_null.remove(&key(column));
                self.validated_not_null.remove(&key(column));
            }
            AlterAction::SetNotNull { column } => {
                self.not_null.insert(key(column));
                self.not_null_columns.insert(key(column));
            }
            AlterAction::DropNotNull { column } => {
                self.not_null.remove(&key(column));
                self.not_null_columns.remove(&key(column));
            }
            AlterAction::AddConstraint(c) if c.kind == ConstraintKind::PrimaryKey => {
                // A primary key makes its columns NOT NULL.
                for column in &c.columns {
                    self.not_null.insert(key(column));
                }
            }
            AlterAction::AlterType { column, ty } => {
                self.column_types
                    .insert((table.name.clone(), column.clone()), ty.clone());
            }
            AlterAction::AddConstraint(c) => {
                let Some(name) = &c.name else { return };
                if c.not_valid {
                    if self.in_transaction {
                        self.not_valid_in_transaction.insert(name.clone());
                    }
                    if let Some(col) = &c.not_null_of {
                        self.not_null_checks
                            .insert(name.clone(), (table.name.clone(), col.clone()));
                    }
                } else if let Some(col) = &c.not_null_of {
                    self.validated_not_null
                        .insert((table.name.clone(), col.clone()));
                }
            }
            AlterAction::ValidateConstraint { name } => {
                if let Some(pair) = self.not_null_checks.get(name) {
                    self.validated_not_null.insert(pair.clone());
                }
            }
            _ => {}
        }
    }
}

/// Whether a statement does work while a transaction holds its locks (SET and the transaction's
/// own end do not).
pub fn counts_as_work(kind: &StmtKind) -> bool {
    !matches!(
        kind,
        StmtKind::Set { .. } | StmtKind::Commit | StmtKind::Rollback | StmtKind::Begin
    )
}
