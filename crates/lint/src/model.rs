//! The statement model the rules read: a closed enum of the statement kinds that matter for
//! locking and compatibility, with byte spans into the source. `parse` builds it from the
//! PostgreSQL parse tree, so no rule ever walks the protobuf tree itself.

/// A byte range in the linted source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// One statement of the source, reduced to what the rules need.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// From the statement's first token to its last (without the `;`).
    pub span: Span,
    pub kind: StmtKind,
    /// Identifiers in the statement longer than PostgreSQL's 63-byte limit.
    pub long_identifiers: Vec<String>,
    /// Set for a statement of a PL/pgSQL body (a DO block or a function), which `body` finds.
    pub in_body: Option<InBody>,
    /// For ALTER TABLE: where each command (`ADD CONSTRAINT ...`, `ALTER COLUMN ...`) sits in
    /// the source, parallel to `actions`, so a finding points at its clause. Empty otherwise.
    pub clauses: Vec<Span>,
}

/// Where a statement of a PL/pgSQL body runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InBody {
    pub routine: RoutineKind,
    /// Inside a LOOP, WHILE or FOR whose body never COMMITs: every pass runs in the same
    /// transaction, so a "batched" loop holds every batch's row locks until the block ends.
    pub loop_without_commit: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutineKind {
    /// `DO $$ ... $$`: runs now, as one statement.
    Do,
    /// `CREATE FUNCTION` or `CREATE PROCEDURE`: runs when called, in the caller's transaction.
    Function,
}

/// A table, as the statement names it. `name` is the bare relation name, which is what the
/// linter matches on; `display` keeps the schema when one was written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableName {
    pub name: String,
    pub display: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StmtKind {
    Begin,
    Commit,
    Rollback,
    /// `SET [LOCAL] name = value`; `value` is `None` for `RESET` and `SET ... TO DEFAULT`.
    Set {
        name: String,
        value: Option<String>,
        local: bool,
    },
    CreateTable {
        table: TableName,
        columns: Vec<ColumnSpec>,
        constraints: Vec<ConstraintSpec>,
    },
    AlterTable {
        table: TableName,
        actions: Vec<AlterAction>,
    },
    CreateIndex {
        name: Option<String>,
        table: TableName,
        concurrently: bool,
        unique: bool,
    },
    DropIndex {
        names: Vec<String>,
        concurrently: bool,
    },
    Reindex {
        target: String,
        /// `REINDEX INDEX`: `target` is an index, not a table.
        index: bool,
        concurrently: bool,
    },
    RenameTable {
        table: TableName,
        to: String,
    },
    RenameColumn {
        table: TableName,
        column: String,
        to: String,
    },
    DropTable {
        tables: Vec<TableName>,
    },
    Update {
        table: TableName,
        /// The alias the statement gives the table (`UPDATE orders o`), if any.
        alias: Option<String>,
        has_where: bool,
        /// The WHERE clause split at its top-level ANDs.
        filters: Vec<Filter>,
        /// From `WHERE` to the end of its condition.
        where_span: Option<Span>,
    },
    Delete {
        table: TableName,
        alias: Option<String>,
        has_where: bool,
        filters: Vec<Filter>,
        where_span: Option<Span>,
    },
    /// `ALTER TYPE name RENAME TO to` (also domains).
    RenameType {
        name: String,
        to: String,
    },
    /// `ALTER TYPE name RENAME VALUE 'from' TO 'to'`.
    RenameEnumValue {
        type_name: String,
        from: String,
        to: String,
    },
    /// `CREATE TYPE name AS ENUM (...)` and the other CREATE TYPE forms, `CREATE DOMAIN`.
    CreateType {
        name: String,
    },
    Truncate {
        tables: Vec<TableName>,
        cascade: bool,
    },
    Vacuum {
        full: bool,
        tables: Vec<TableName>,
    },
    Cluster {
        table: Option<TableName>,
    },
    /// `DO` or `CREATE FUNCTION/PROCEDURE` with a body in `language`.
    Routine {
        kind: RoutineKind,
        language: String,
    },
    /// Anything else: no rule needs to know more.
    Other,
}

impl StmtKind {
    /// PostgreSQL refuses these inside a transaction block: the CONCURRENTLY forms and VACUUM.
    pub fn runs_outside_transaction(&self) -> bool {
        match self {
            StmtKind::CreateIndex { concurrently, .. }
            | StmtKind::DropIndex { concurrently, .. }
            | StmtKind::Reindex { concurrently, .. } => *concurrently,
            StmtKind::Vacuum { .. } => true,
            StmtKind::AlterTable { actions, .. } => actions
                .iter()
                .any(|a| matches!(a, AlterAction::DetachPartition { concurrently: true })),
            _ => false,
        }
    }
}

/// A column as `CREATE TABLE` or `ADD COLUMN` defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub name: String,
    pub ty: TypeSpec,
    pub not_null: bool,
    pub default: Option<DefaultKind>,
    /// The default expression as SQL.
    pub default_sql: Option<String>,
    pub primary_key: bool,
    /// Stored generated (`GENERATED ALWAYS AS (...) STORED`) columns are computed for every row.
    pub generated: bool,
    pub identity: bool,
    /// Inline CHECK, REFERENCES and UNIQUE constraints.
    pub constraints: Vec<ConstraintSpec>,
}

/// How expensive a default is to add: PostgreSQL 11 and later store a non-volatile default in
/// the catalog instead of rewriting the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultKind {
    NonVolatile,
    /// The volatile function that forces the rewrite.
    Volatile(String),
}

/// A type name as written, normalised: `name` is PostgreSQL's internal name (`int4`, `varchar`,
/// `bpchar`, `timestamp`), `mods` its numeric modifiers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TypeSpec {
    pub name: String,
    pub mods: Vec<i64>,
    pub array: bool,
}

impl TypeSpec {
    /// The type as a person would write it, e.g. `varchar(20)`.
    pub fn display(&self) -> String {
        let base = match self.name.as_str() {
            "int2" => "smallint",
            "int4" => "integer",
            "int8" => "bigint",
            "bpchar" => "char",
            "bool" => "boolean",
            "float8" => "double precision",
            "float4" => "real",
            "timestamptz" => "timestamptz",
            other => other,
        };
        let mods = if self.mods.is_empty() {
            String::new()
        } else {
            let m: Vec<String> = self.mods.iter().map(i64::to_string).collect();
            format!("({})", m.join(","))
        };
        format!("{base}{mods}{}", if self.array { "[]" } else { "" })
    }
}

/// One top-level AND term of an UPDATE's or DELETE's WHERE, as far as the rules care: whether it
/// can be told to match every row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `col IS NULL`.
    IsNull { column: String },
    /// `a.x = b.y`: columns of two different relations compared, which a join through
    /// FROM/USING makes.
    ColumnsEqual,
    /// A constant that is true (`true`, `1 = 1`).
    AlwaysTrue,
    /// Anything else: it may select some rows only.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintKind {
    Check,
    ForeignKey,
    Unique,
    PrimaryKey,
    Exclusion,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstraintSpec {
    pub kind: ConstraintKind,
    pub name: Option<String>,
    /// Added `NOT VALID`: existing rows are not checked now.
    pub not_valid: bool,
    /// `UNIQUE USING INDEX idx` / `PRIMARY KEY USING INDEX idx`.
    pub using_index: Option<String>,
    /// The key columns of UNIQUE and PRIMARY KEY table constraints.
    pub columns: Vec<String>,
    /// For `CHECK (col IS NOT NULL)`: the column.
    pub not_null_of: Option<String>,
    /// For a foreign key: the table it references and its columns there.
    pub references: Option<(TableName, Vec<String>)>,
    /// The CHECK expression (or a foreign key's local columns, comma-separated), as SQL.
    pub expr: Option<String>,
    /// For a constraint written inline on an added column: the constraint as a table
    /// constraint of that column (`FOREIGN KEY (c) REFERENCES t (id) ON DELETE CASCADE`),
    /// without its name, printed by PostgreSQL's deparser.
    pub as_table_constraint: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AlterAction {
    AddColumn(ColumnSpec),
    DropColumn { column: String },
    AlterType { column: String, ty: TypeSpec },
    SetNotNull { column: String },
    DropNotNull { column: String },
    SetDefault { column: String },
    DropDefault { column: String },
    AddConstraint(ConstraintSpec),
    ValidateConstraint { name: String },
    DetachPartition { concurrently: bool },
    AttachPartition,
    Other,
}
