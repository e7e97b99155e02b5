//! What a query step runs, after parsing: which fields it reads, its
//! filter, and either a projection or a windowed aggregation. `Display`
//! prints the plan (golden tests and `weir validate -v` use it).

use crate::window::{AggFunc, WindowKind};
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The source or step named in FROM.
    pub from: String,
    /// TIMESTAMP BY: the field holding event time; `None` keeps the time
    /// the event came with (the source's `timestamp_field`).
    pub timestamp_by: Option<String>,
    /// Top-level fields read from each event; `Expr::Field(i)` is `fields[i]`.
    pub fields: Vec<String>,
    /// WHERE, over fields.
    pub filter: Option<Expr>,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// No aggregates: each event that passes WHERE gives one output;
    /// `None` is `SELECT *` (the event unchanged).
    Project(Option<Vec<Item>>),
    /// GROUP BY keys and a window, with aggregates.
    Window(Windowed),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Windowed {
    pub window: WindowKind,
    /// Group keys: field indexes, in GROUP BY order.
    pub keys: Vec<usize>,
    /// Distinct aggregates; `Expr::Agg(i)` is `aggregates[i]`, reading
    /// field `aggregates[i].1` (ignored for `COUNT(*)`).
    pub aggregates: Vec<(AggFunc, usize)>,
    /// SELECT, over keys and aggregates.
    pub select: Vec<Item>,
    /// HAVING, over keys and aggregates.
    pub having: Option<Expr>,
}

/// One output column: its name (the alias, or the expression as written) and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub name: String,
    pub expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Field(usize),
    /// A group key (by position in GROUP BY).
    Key(usize),
    Agg(usize),
    Lit(Lit),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(Box<Expr>, BinOp, Box<Expr>),
    /// `IS NULL` (false) or `IS NOT NULL` (true).
    IsNull(Box<Expr>, bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    And,
    Or,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    Plus,
    Minus,
    Mul,
    Div,
    Mod,
}

impl BinOp {
    fn symbol(self) -> &'static str {
        match self {
            BinOp::And => "AND",
            BinOp::Or => "OR",
            BinOp::Eq => "=",
            BinOp::NotEq => "<>",
            BinOp::Lt => "<",
            BinOp::LtEq => "<=",
            BinOp::Gt => ">",
            BinOp::GtEq => ">=",
            BinOp::Plus => "+",
            BinOp::Minus => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Field(i) => write!(f, "field{i}"),
            Expr::Key(i) => write!(f, "key{i}"),
            Expr::Agg(i) => write!(f, "agg{i}"),
            Expr::Lit(Lit::Null) => f.write_str("NULL"),
            Expr::Lit(Lit::Bool(b)) => write!(f, "{b}"),
            Expr::Lit(Lit::Num(n)) => write!(f, "{n}"),
            Expr::Lit(Lit::Str(s)) => write!(f, "'{}'", s.replace('\'', "''")),
            Expr::Not(e) => write!(f, "(NOT {e})"),
            Expr::Neg(e) => write!(f, "(-{e})"),
            Expr::Binary(a, op, b) => write!(f, "({a} {} {b})", op.symbol()),
            Expr::IsNull(e, false) => write!(f, "({e} IS NULL)"),
            Expr::IsNull(e, true) => write!(f, "({e} IS NOT NULL)"),
        }
    }
}

fn ms(v: i64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(v as u64)).to_string()
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "from: {}", self.from)?;
        match &self.timestamp_by {
            Some(t) => writeln!(f, "event time: field `{t}`")?,
            None => writeln!(f, "event time: as ingested")?,
        }
        let fields: Vec<String> = self.fields.iter().enumerate().map(|(i, n)| format!("field{i}={n}")).collect();
        writeln!(f, "fields: {}", fields.join(", "))?;
        if let Some(e) = &self.filter {
            writeln!(f, "where: {e}")?;
        }
        let items = |f: &mut fmt::Formatter<'_>, items: &[Item]| {
            let list: Vec<String> = items.iter().map(|i| format!("{}={}", i.name, i.expr)).collect();
            writeln!(f, "select: {}", list.join(", "))
        };
        match &self.body {
            Body::Project(None) => writeln!(f, "select: *"),
            Body::Project(Some(list)) => items(f, list),
            Body::Window(w) => {
                let window = match w.window {
                    WindowKind::Tumbling { size } => format!("tumbling {}", ms(size)),
                    WindowKind::Hopping { size, hop } => format!("hopping {} every {}", ms(size), ms(hop)),
                    WindowKind::Sliding { size } => format!("sliding {}", ms(size)),
                    WindowKind::Session { timeout, max: None } => format!("session timeout {}", ms(timeout)),
                    WindowKind::Session { timeout, max: Some(m) } => {
                        format!("session timeout {} max {}", ms(timeout), ms(m))
                    }
                };
                writeln!(f, "window: {window}")?;
                let keys: Vec<String> = w.keys.iter().enumerate().map(|(i, k)| format!("key{i}=field{k}")).collect();
                writeln!(f, "group by: {}", if keys.is_empty() { "(none)".into() } else { keys.join(", ") })?;
                let aggs: Vec<String> = w
                    .aggregates
                    .iter()
                    .enumerate()
                    .map(|(i, (func, arg))| match func {
                        AggFunc::CountAll => format!("agg{i}=COUNT(*)"),
                        AggFunc::PercentileCont(p) | AggFunc::PercentileDisc(p) => {
                            format!("agg{i}={}(field{arg}, {p})", func.name())
                        }
                        func => format!("agg{i}={func}(field{arg})"),
                    })
                    .collect();
                writeln!(f, "aggregates: {}", aggs.join(", "))?;
                if let Some(h) = &w.having {
                    writeln!(f, "having: {h}")?;
                }
                items(f, &w.select)
            }
        }
    }
}
