//! What one simulated application client does: the version it speaks (its `search_path`), the
//! statements it runs in turn, how it sends them (a statement prepared once, the extended
//! protocol per call, or simple queries) and how fast.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use postgres::types::{IsNull, ToSql, Type};

/// How a client sends its statements to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Each statement is prepared once, when the client connects (before whatever the test does
    /// next), and executed by name ever after, as drivers with a statement cache do. A change of
    /// a column's type under such a statement gives "cached plan must not change result type".
    Prepared,
    /// The extended protocol with an unnamed statement parsed again on every call, as drivers
    /// without a statement cache do.
    Extended,
    /// The simple-query protocol: parameters are written into the SQL as literals
    /// (`tandem_model::quote_literal`).
    Simple,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Prepared => "prepared",
            Protocol::Extended => "extended",
            Protocol::Simple => "simple",
        }
    }
}

/// How fast a client goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Closed loop: the next statement is sent this long after the previous one finished.
    Pause(Duration),
    /// A fixed target rate in statements per second. A statement that finishes late makes the next
    /// one start at once; missed slots are not made up, so the rate is at most this.
    Rate(f64),
}

/// What a statement does to the data, which decides what is recorded about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Returns rows; the row count is recorded.
    Read,
    /// Writes are recorded with their parameters (see [`crate::Write`]), so a test can compute
    /// what the table must hold in the end.
    Insert,
    Update,
    Delete,
}

impl OpKind {
    pub fn is_write(self) -> bool {
        !matches!(self, OpKind::Read)
    }
}

/// A parameter value. It is sent as whatever type the server asks for where a conversion is
/// obvious (an `Int` to an `int2`, `int4`, `int8`, `text` or `varchar` parameter, a `Text` that
/// holds a number to an integer parameter), so one workload runs unchanged against a column
/// whose type a migration changes.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Bool(bool),
}

impl Value {
    /// The value as an SQL literal, for the simple-query protocol.
    pub fn literal(&self) -> String {
        match self {
            Value::Null => "NULL".into(),
            Value::Int(i) => {
                if *i < 0 {
                    format!("({i})")
                } else {
                    i.to_string()
                }
            }
            Value::Text(s) => tandem_model::quote_literal(s),
            Value::Bool(b) => b.to_string(),
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Text(s) => s.parse().ok(),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Int(i) => Some(i.to_string()),
            Value::Text(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.literal())
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Value {
        Value::Int(i.into())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.into())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, BoxError> {
        let int = |i: i64, out: &mut _| -> Result<IsNull, BoxError> {
            match *ty {
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT8 => i.to_sql(ty, out),
                _ => i.to_string().as_str().to_sql(ty, out),
            }
        };
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => int(*i, out),
            Value::Text(s) => match *ty {
                Type::INT2 | Type::INT4 | Type::INT8 => int(s.parse()?, out),
                Type::BOOL => s.parse::<bool>()?.to_sql(ty, out),
                _ => s.as_str().to_sql(ty, out),
            },
            Value::Bool(b) => match *ty {
                Type::BOOL => b.to_sql(ty, out),
                _ => b.to_string().as_str().to_sql(ty, out),
            },
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2
                | Type::INT4
                | Type::INT8
                | Type::BOOL
                | Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::UNKNOWN
        ) || <&str as ToSql>::accepts(ty)
    }

    postgres::types::to_sql_checked!();
}

/// Which call of which client a statement's parameters are made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// The client's position in the order clients were added to the traffic (from 0).
    pub client: usize,
    /// How many statements this client sent before this one.
    pub seq: u64,
    /// How many times this client ran this statement before.
    pub n: u64,
}

/// Makes a statement's parameters for one call.
pub type Params = Arc<dyn Fn(Call) -> Vec<Value> + Send + Sync>;

/// One statement a client runs, with `$1`, `$2`, ... for its parameters.
#[derive(Clone)]
pub struct Op {
    /// A short name for reports, e.g. `insert` or `read-by-id`.
    pub label: String,
    pub kind: OpKind,
    pub sql: String,
    pub params: Params,
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Op")
            .field("label", &self.label)
            .field("kind", &self.kind)
            .field("sql", &self.sql)
            .finish_non_exhaustive()
    }
}

impl Op {
    pub fn new(
        label: &str,
        kind: OpKind,
        sql: &str,
        params: impl Fn(Call) -> Vec<Value> + Send + Sync + 'static,
    ) -> Op {
        Op {
            label: label.into(),
            kind,
            sql: sql.into(),
            params: Arc::new(params),
        }
    }

    pub fn read(
        label: &str,
        sql: &str,
        params: impl Fn(Call) -> Vec<Value> + Send + Sync + 'static,
    ) -> Op {
        Op::new(label, OpKind::Read, sql, params)
    }

    pub fn insert(
        label: &str,
        sql: &str,
        params: impl Fn(Call) -> Vec<Value> + Send + Sync + 'static,
    ) -> Op {
        Op::new(label, OpKind::Insert, sql, params)
    }

    pub fn update(
        label: &str,
        sql: &str,
        params: impl Fn(Call) -> Vec<Value> + Send + Sync + 'static,
    ) -> Op {
        Op::new(label, OpKind::Update, sql, params)
    }

    pub fn delete(
        label: &str,
        sql: &str,
        params: impl Fn(Call) -> Vec<Value> + Send + Sync + 'static,
    ) -> Op {
        Op::new(label, OpKind::Delete, sql, params)
    }

    /// The SQL with the parameters written in as literals, for the simple-query protocol.
    pub fn inline(&self, params: &[Value]) -> String {
        inline_params(&self.sql, params)
    }
}

/// One client: a session on `search_path` running `ops` in turn, over and over.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Names the client in reports; [`crate::Traffic::retire`] stops clients by name.
    pub name: String,
    /// The session's `search_path`, set at connection time (`options=-c search_path=...`), e.g.
    /// `"public_02_add", public`. `None` keeps the server's default.
    pub search_path: Option<String>,
    pub protocol: Protocol,
    pub pace: Pace,
    pub ops: Vec<Op>,
}

impl Workload {
    /// A client that runs nothing yet, prepared statements, 5 ms pauses.
    pub fn new(name: &str, search_path: Option<&str>) -> Workload {
        Workload {
            name: name.into(),
            search_path: search_path.map(Into::into),
            protocol: Protocol::Prepared,
            pace: Pace::Pause(Duration::from_millis(5)),
            ops: Vec::new(),
        }
    }

    pub fn protocol(mut self, protocol: Protocol) -> Workload {
        self.protocol = protocol;
        self
    }

    pub fn pace(mut self, pace: Pace) -> Workload {
        self.pace = pace;
        self
    }

    pub fn op(mut self, op: Op) -> Workload {
        self.ops.push(op);
        self
    }
}

/// Replaces `$n` outside string literals and quoted identifiers by the n-th value's literal.
pub(crate) fn inline_params(sql: &str, params: &[Value]) -> String {
    let mut out = String::with_capacity(sql.len() + 16 * params.len());
    let mut chars = sql.char_indices().peekable();
    let mut quote: Option<char> = None;
    while let Some((_, c)) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            out.push(c);
            continue;
        }
        if c == '$' {
            let mut digits = String::new();
            while let Some(&(_, d)) = chars.peek() {
                if d.is_ascii_digit() {
                    digits.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            match digits.parse::<usize>() {
                Ok(n) if n >= 1 && n <= params.len() => out.push_str(&params[n - 1].literal()),
                _ => {
                    out.push('$');
                    out.push_str(&digits);
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_literals_outside_quotes() {
        let params = [
            Value::Int(7),
            Value::Text("it's".into()),
            Value::Null,
            Value::Int(-3),
        ];
        assert_eq!(
            inline_params(
                "UPDATE t SET a = $2, \"$1\" = '$1', b = $3 WHERE id = $1 AND c = $4 AND d = $10",
                &params
            ),
            "UPDATE t SET a = 'it''s', \"$1\" = '$1', b = NULL WHERE id = 7 AND c = (-3) AND d = $10"
        );
    }
}
