//! Values and expression evaluation. SQL's three-valued logic: anything
//! compared with null is null, and a filter passes only on true.

use super::plan::{BinOp, Expr, Lit};
use std::borrow::Cow;
use std::cmp::Ordering;

/// A value read from an event, a group key, or an aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// Null, or a field the event does not have.
    Null,
    Bool(bool),
    Num(f64),
    Str(Cow<'a, str>),
    /// An array or an object: it can be tested for null, not computed with.
    Nested,
}

impl Value<'_> {
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Num(_) => "a number",
            Value::Str(_) => "a string",
            Value::Nested => "an array or object",
        }
    }

    fn truth(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

/// Where an expression's leaves come from.
pub trait Scope {
    fn field(&self, i: usize) -> Value<'_>;
    fn key(&self, i: usize) -> Value<'_>;
    fn agg(&self, i: usize) -> Value<'_>;
}

/// Whether a filter passes: only when it is true.
pub fn passes(e: &Expr, s: &impl Scope) -> bool {
    eval(e, s) == Value::Bool(true)
}

pub fn eval<'s>(e: &Expr, s: &'s impl Scope) -> Value<'s> {
    match e {
        Expr::Field(i) => s.field(*i),
        Expr::Key(i) => s.key(*i),
        Expr::Agg(i) => s.agg(*i),
        Expr::Lit(l) => match l {
            Lit::Null => Value::Null,
            Lit::Bool(b) => Value::Bool(*b),
            Lit::Num(n) => Value::Num(*n),
            Lit::Str(t) => Value::Str(Cow::Owned(t.clone())),
        },
        Expr::Not(inner) => match eval(inner, s).truth() {
            Some(b) => Value::Bool(!b),
            None => Value::Null,
        },
        Expr::Neg(inner) => match eval(inner, s) {
            Value::Num(n) => Value::Num(-n),
            _ => Value::Null,
        },
        Expr::IsNull(inner, negated) => Value::Bool((eval(inner, s) == Value::Null) != *negated),
        Expr::Binary(a, op, b) => binary(eval(a, s), *op, || eval(b, s)),
    }
}

fn binary<'s>(a: Value<'s>, op: BinOp, b: impl FnOnce() -> Value<'s>) -> Value<'s> {
    match op {
        BinOp::And => match a.truth() {
            Some(false) => Value::Bool(false),
            ta => match (ta, b().truth()) {
                (_, Some(false)) => Value::Bool(false),
                (Some(true), Some(true)) => Value::Bool(true),
                _ => Value::Null,
            },
        },
        BinOp::Or => match a.truth() {
            Some(true) => Value::Bool(true),
            ta => match (ta, b().truth()) {
                (_, Some(true)) => Value::Bool(true),
                (Some(false), Some(false)) => Value::Bool(false),
                _ => Value::Null,
            },
        },
        BinOp::Plus | BinOp::Minus | BinOp::Mul | BinOp::Div | BinOp::Mod => match (a, b()) {
            (Value::Num(x), Value::Num(y)) => {
                let r = match op {
                    BinOp::Plus => x + y,
                    BinOp::Minus => x - y,
                    BinOp::Mul => x * y,
                    BinOp::Div => x / y,
                    _ => x % y,
                };
                if r.is_finite() { Value::Num(r) } else { Value::Null }
            }
            _ => Value::Null,
        },
        _ => {
            let ord = match (&a, &b()) {
                (Value::Num(x), Value::Num(y)) => x.partial_cmp(y),
                (Value::Str(x), Value::Str(y)) => Some(x.as_ref().cmp(y.as_ref())),
                (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
                _ => None,
            };
            let Some(ord) = ord else { return Value::Null };
            Value::Bool(match op {
                BinOp::Eq => ord == Ordering::Equal,
                BinOp::NotEq => ord != Ordering::Equal,
                BinOp::Lt => ord == Ordering::Less,
                BinOp::LtEq => ord != Ordering::Greater,
                BinOp::Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    struct Row(Vec<Value<'static>>);
    impl Scope for Row {
        fn field(&self, i: usize) -> Value<'_> {
            self.0[i].clone()
        }
        fn key(&self, _: usize) -> Value<'_> {
            Value::Null
        }
        fn agg(&self, _: usize) -> Value<'_> {
            Value::Null
        }
    }

    fn filter(sql_where: &str, row: Vec<Value<'static>>) -> bool {
        let plan = parse(&format!("SELECT * FROM s WHERE {sql_where}")).unwrap();
        passes(plan.filter.as_ref().unwrap(), &Row(row))
    }

    #[test]
    fn filters_follow_sql_null_logic() {
        assert!(filter("a > 1 AND b = 'x'", vec![Value::Num(2.0), Value::Str("x".into())]));
        assert!(!filter("a > 1 AND b = 'x'", vec![Value::Num(2.0), Value::Null]));
        assert!(filter("a > 1 OR b = 'x'", vec![Value::Num(2.0), Value::Null]));
        assert!(!filter("NOT (a = 1)", vec![Value::Null]));
        assert!(filter("a IS NULL", vec![Value::Null]));
        assert!(filter("a IS NOT NULL AND a * 2 + 1 >= 5", vec![Value::Num(2.0)]));
        assert!(!filter("a / 0 > 1", vec![Value::Num(2.0)]));
        assert!(filter("a <> 'P1'", vec![Value::Str("P2".into())]));
        assert!(!filter("a = 1", vec![Value::Str("1".into())]), "no implicit conversion");
    }
}
