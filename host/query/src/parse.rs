//! The query language: Azure Stream Analytics-style SQL, parsed by the
//! `sqlparser` crate and turned into a [`Plan`]. Everything the runtime
//! cannot run exactly is refused here, quoting the part in question.

use super::plan::{BinOp, Body, Expr, Item, Lit, Plan, Windowed};
use crate::window::{AggFunc, WindowKind};
use sqlparser::ast::{self, BinaryOperator, FunctionArg, FunctionArgExpr, FunctionArguments, UnaryOperator};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

/// Why a query was refused; the text quotes the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

fn refuse<T>(message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError(message.into()))
}

/// Names Weir adds to every windowed result.
pub const WINDOW_START: &str = "window_start";
pub const WINDOW_END: &str = "window_end";

/// The longest window, as in Azure Stream Analytics.
const MAX_WINDOW_MS: i64 = 7 * 24 * 3_600_000;

pub fn parse(sql: &str) -> Result<Plan, QueryError> {
    let dialect = GenericDialect {};
    let (sql, timestamp_by) = take_timestamp_by(&dialect, sql)?;
    let statements =
        Parser::parse_sql(&dialect, &sql).map_err(|e| QueryError(format!("syntax error: {}", strip_sql_error(&e))))?;
    let query = match statements.as_slice() {
        [ast::Statement::Query(q)] => q,
        [] => return refuse("the query is empty"),
        [other] => return refuse(format!("only SELECT queries run in a step, not `{other}`")),
        _ => return refuse("a step runs one query; found several statements"),
    };
    check_query_clauses(query)?;
    let select = match query.body.as_ref() {
        ast::SetExpr::Select(s) => s,
        other => return refuse(format!("only a plain SELECT is supported, not `{other}`")),
    };
    let from = from_clause(select)?;
    let mut b = Builder { fields: Vec::new(), keys: Vec::new(), aggregates: Vec::new() };
    let filter = select.selection.as_ref().map(|e| b.expr(e, Scope::Row)).transpose()?;

    let (window, key_exprs) = group_by(&select.group_by)?;
    let has_aggregates = select.projection.iter().any(|i| item_expr(i).is_some_and(contains_aggregate))
        || select.having.as_ref().is_some_and(contains_aggregate);
    let body = match window {
        None if !key_exprs.is_empty() => {
            return refuse(format!(
                "GROUP BY needs a window: add TumblingWindow, HoppingWindow, SlidingWindow or SessionWindow to `{}`",
                select.group_by
            ));
        }
        None if has_aggregates => {
            return refuse(
                "aggregates need GROUP BY with a window, e.g. `GROUP BY TumblingWindow(minute, 5)`".to_string(),
            );
        }
        None => {
            if let Some(h) = &select.having {
                return refuse(format!("HAVING needs GROUP BY with a window: `HAVING {h}`"));
            }
            Body::Project(projection(&mut b, &select.projection, Scope::Row)?)
        }
        Some(window) => {
            for k in key_exprs {
                let ast::Expr::Identifier(id) = k else {
                    return refuse(format!("GROUP BY keys must be fields, not `{k}`"));
                };
                let field = b.field(&id.value);
                b.keys.push(field);
            }
            let Some(select_items) = projection(&mut b, &select.projection, Scope::Group)? else {
                return refuse("SELECT * cannot be used with GROUP BY: name the keys and aggregates");
            };
            let having = select.having.as_ref().map(|e| b.expr(e, Scope::Group)).transpose()?;
            if b.aggregates.is_empty() {
                return refuse("a windowed query needs at least one aggregate (COUNT, SUM, AVG, ...) in SELECT");
            }
            Body::Window(Windowed {
                window,
                keys: b.keys.clone(),
                aggregates: b.aggregates.clone(),
                select: select_items,
                having,
            })
        }
    };
    Ok(Plan { from, timestamp_by, fields: b.fields, filter, body })
}

/// `TIMESTAMP BY field` is Stream Analytics syntax that no SQL dialect
/// parses: it is taken out of the token stream before parsing.
fn take_timestamp_by(dialect: &GenericDialect, sql: &str) -> Result<(String, Option<String>), QueryError> {
    let tokens = Tokenizer::new(dialect, sql)
        .tokenize()
        .map_err(|e| QueryError(format!("syntax error: {}", strip_sql_error(&e))))?;
    let solid: Vec<usize> = (0..tokens.len()).filter(|&i| !matches!(tokens[i], Token::Whitespace(_))).collect();
    let word = |i: usize, w: &str| matches!(&tokens[i], Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    let mut found = None;
    for (n, &i) in solid.iter().enumerate() {
        if word(i, "TIMESTAMP") && solid.get(n + 1).is_some_and(|&j| word(j, "BY")) {
            let Some(Token::Word(field)) = solid.get(n + 2).map(|&j| &tokens[j]) else {
                return refuse("TIMESTAMP BY needs a field name");
            };
            if found.is_some() {
                return refuse("TIMESTAMP BY appears twice");
            }
            found = Some((i, solid[n + 2], field.value.clone()));
        }
    }
    let Some((first, last, field)) = found else { return Ok((sql.to_string(), None)) };
    let mut out = String::new();
    for (i, t) in tokens.iter().enumerate() {
        if i == first {
            out.push(' ');
        } else if !(first..=last).contains(&i) {
            out.push_str(&t.to_string());
        }
    }
    Ok((out, Some(field)))
}

/// sqlparser's messages end with " at Line: 1, Column: 9"; kept, but
/// without the "sql parser error: " prefix.
fn strip_sql_error(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    text.strip_prefix("sql parser error: ").unwrap_or(&text).to_string()
}

fn check_query_clauses(q: &ast::Query) -> Result<(), QueryError> {
    if let Some(with) = &q.with {
        return refuse(format!("WITH is not supported: `{with}`"));
    }
    if let Some(o) = &q.order_by {
        return refuse(format!("ORDER BY is not supported in a stream: `{o}`"));
    }
    if let Some(l) = &q.limit_clause {
        return refuse(format!("LIMIT is not supported in a stream: `{}`", l.to_string().trim()));
    }
    if q.fetch.is_some() || !q.locks.is_empty() || q.for_clause.is_some() || q.settings.is_some() {
        return refuse(format!("unsupported clause in `{q}`"));
    }
    if q.format_clause.is_some() || !q.pipe_operators.is_empty() {
        return refuse(format!("unsupported clause in `{q}`"));
    }
    Ok(())
}

fn from_clause(select: &ast::Select) -> Result<String, QueryError> {
    let table = match select.from.as_slice() {
        [] => return refuse("the query needs FROM (a source or an earlier step)"),
        [t] => t,
        more => {
            let list: Vec<String> = more.iter().map(ToString::to_string).collect();
            return refuse(format!("FROM takes one input, not `{}`", list.join(", ")));
        }
    };
    if let Some(join) = table.joins.first() {
        return refuse(format!("JOIN is not supported: `{join}`"));
    }
    match &table.relation {
        ast::TableFactor::Table { name, alias: None, args: None, .. }
            if name.0.len() == 1 && table.relation.to_string() == name.to_string() =>
        {
            match &name.0[0] {
                ast::ObjectNamePart::Identifier(id) => Ok(id.value.clone()),
                other => refuse(format!("FROM must name a source or a step, not `{other}`")),
            }
        }
        other => refuse(format!("FROM must name a source or a step, not `{other}`")),
    }
    .and_then(|from| {
        // Anything else the SELECT carries (DISTINCT, TOP, QUALIFY, ...) shows
        // up as a difference from the clauses this module understands.
        let items: Vec<String> = select.projection.iter().map(ToString::to_string).collect();
        let mut expected = format!("SELECT {}", items.join(", "));
        expected.push_str(&format!(" FROM {}", select.from[0]));
        if let Some(w) = &select.selection {
            expected.push_str(&format!(" WHERE {w}"));
        }
        if !matches!(&select.group_by, ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty()) {
            expected.push_str(&format!(" {}", select.group_by));
        }
        if let Some(h) = &select.having {
            expected.push_str(&format!(" HAVING {h}"));
        }
        if let Some(d) = &select.distinct {
            return refuse(format!("{} is not supported in a stream", d.to_string().trim()));
        }
        if select.to_string() != expected {
            return refuse(format!("unsupported clause in `{select}`"));
        }
        Ok(from)
    })
}

fn group_by(g: &ast::GroupByExpr) -> Result<(Option<WindowKind>, Vec<&ast::Expr>), QueryError> {
    let exprs = match g {
        ast::GroupByExpr::Expressions(e, m) if m.is_empty() => e,
        other => return refuse(format!("unsupported grouping: `{other}`")),
    };
    let mut window = None;
    let mut keys = Vec::new();
    for e in exprs {
        match e {
            ast::Expr::Function(f) if window_name(f).is_some() => {
                if window.is_some() {
                    return refuse(format!("GROUP BY takes one window; found a second one: `{e}`"));
                }
                window = Some(window_fn(f)?);
            }
            other => keys.push(other),
        }
    }
    Ok((window, keys))
}

fn window_name(f: &ast::Function) -> Option<&'static str> {
    let name = f.name.to_string().to_ascii_uppercase();
    Some(match name.as_str() {
        "TUMBLINGWINDOW" | "TUMBLING" => "TumblingWindow",
        "HOPPINGWINDOW" | "HOPPING" => "HoppingWindow",
        "SLIDINGWINDOW" | "SLIDING" => "SlidingWindow",
        "SESSIONWINDOW" | "SESSION" => "SessionWindow",
        _ => return None,
    })
}

fn window_fn(f: &ast::Function) -> Result<WindowKind, QueryError> {
    let name = window_name(f).expect("checked by the caller");
    let usage = match name {
        "TumblingWindow" => "TumblingWindow(unit, size)",
        "HoppingWindow" => "HoppingWindow(unit, size, hop)",
        "SlidingWindow" => "SlidingWindow(unit, size)",
        _ => "SessionWindow(unit, timeout[, maxduration])",
    };
    let bad = |why: &str| QueryError(format!("{why} in `{f}`; expected {usage}"));
    let args = plain_args(f).ok_or_else(|| bad("unsupported arguments"))?;
    let Some((unit, sizes)) = args.split_first() else { return Err(bad("missing arguments")) };
    let unit_ms = match unit {
        ast::Expr::Identifier(id) => match id.value.to_ascii_lowercase().as_str() {
            "day" | "dd" | "d" => 86_400_000,
            "hour" | "hh" => 3_600_000,
            "minute" | "mi" | "n" => 60_000,
            "second" | "ss" | "s" => 1_000,
            "millisecond" | "ms" => 1,
            other => return Err(bad(&format!("unknown time unit `{other}` (day, hour, minute, second, millisecond)"))),
        },
        other => return Err(bad(&format!("the first argument must be a time unit, not `{other}`"))),
    };
    let mut ms = Vec::new();
    for s in sizes {
        let n = match s {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::Number(n, _) => n.parse::<i64>().ok().filter(|n| *n > 0),
                _ => None,
            },
            _ => None,
        };
        let n = n.ok_or_else(|| bad(&format!("sizes must be positive whole numbers, not `{s}`")))?;
        let v = n.checked_mul(unit_ms).filter(|v| *v <= MAX_WINDOW_MS);
        ms.push(v.ok_or_else(|| bad("windows are at most 7 days long"))?);
    }
    Ok(match (name, ms.as_slice()) {
        ("TumblingWindow", [size]) => WindowKind::Tumbling { size: *size },
        ("HoppingWindow", [size, hop]) if hop <= size => WindowKind::Hopping { size: *size, hop: *hop },
        ("HoppingWindow", [_, _]) => return Err(bad("the hop must not be longer than the window")),
        ("SlidingWindow", [size]) => WindowKind::Sliding { size: *size },
        ("SessionWindow", [timeout]) => WindowKind::Session { timeout: *timeout, max: None },
        ("SessionWindow", [timeout, max]) if max >= timeout => {
            WindowKind::Session { timeout: *timeout, max: Some(*max) }
        }
        ("SessionWindow", [_, _]) => return Err(bad("the maximum duration must not be shorter than the timeout")),
        _ => return Err(bad("wrong number of arguments")),
    })
}

/// The arguments of a call without DISTINCT, FILTER, OVER and the like.
fn plain_args(f: &ast::Function) -> Option<Vec<&ast::Expr>> {
    if f.filter.is_some() || f.over.is_some() || f.null_treatment.is_some() || f.uses_odbc_syntax {
        return None;
    }
    if !matches!(f.parameters, FunctionArguments::None) {
        return None;
    }
    let list = match &f.args {
        FunctionArguments::List(l) if l.duplicate_treatment.is_none() && l.clauses.is_empty() => l,
        FunctionArguments::None => return Some(Vec::new()),
        _ => return None,
    };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect()
}

fn item_expr(i: &ast::SelectItem) -> Option<&ast::Expr> {
    match i {
        ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
        _ => None,
    }
}

fn aggregate_name(f: &ast::Function) -> Option<String> {
    let name = f.name.to_string().to_ascii_uppercase();
    matches!(
        name.as_str(),
        "COUNT"
            | "SUM"
            | "AVG"
            | "MIN"
            | "MAX"
            | "STDEV"
            | "STDEVP"
            | "VAR"
            | "VARP"
            | "PERCENTILE_CONT"
            | "PERCENTILE_DISC"
    )
    .then_some(name)
}

fn contains_aggregate(e: &ast::Expr) -> bool {
    match e {
        ast::Expr::Function(f) => aggregate_name(f).is_some(),
        ast::Expr::BinaryOp { left, right, .. } => contains_aggregate(left) || contains_aggregate(right),
        ast::Expr::UnaryOp { expr, .. } | ast::Expr::Nested(expr) => contains_aggregate(expr),
        ast::Expr::IsNull(e) | ast::Expr::IsNotNull(e) => contains_aggregate(e),
        _ => false,
    }
}

fn projection(b: &mut Builder, items: &[ast::SelectItem], scope: Scope) -> Result<Option<Vec<Item>>, QueryError> {
    if let [ast::SelectItem::Wildcard(opts)] = items
        && opts.to_string().is_empty()
    {
        return Ok(None);
    }
    let mut out: Vec<Item> = Vec::new();
    for item in items {
        let (expr, name) = match item {
            ast::SelectItem::UnnamedExpr(e) => {
                let name = match e {
                    ast::Expr::Identifier(id) => id.value.clone(),
                    e => e.to_string(),
                };
                (e, name)
            }
            ast::SelectItem::ExprWithAlias { expr, alias } => (expr, alias.value.clone()),
            other => return refuse(format!("`{other}` cannot be combined with other columns; name them instead")),
        };
        if scope == Scope::Group && (name == WINDOW_START || name == WINDOW_END) {
            return refuse(format!("`{name}` is added to every windowed result; choose another name for `{item}`"));
        }
        if out.iter().any(|i| i.name == name) {
            return refuse(format!("the output name `{name}` is used twice; add AS to tell them apart"));
        }
        let expr = b.expr(expr, scope)?;
        out.push(Item { name, expr });
    }
    Ok(Some(out))
}

/// Where an expression appears: over single events (WHERE, projections) or
/// over groups (SELECT and HAVING of a windowed query).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Row,
    Group,
}

struct Builder {
    fields: Vec<String>,
    keys: Vec<usize>,
    aggregates: Vec<(AggFunc, usize)>,
}

impl Builder {
    fn field(&mut self, name: &str) -> usize {
        match self.fields.iter().position(|f| f == name) {
            Some(i) => i,
            None => {
                self.fields.push(name.to_string());
                self.fields.len() - 1
            }
        }
    }

    fn expr(&mut self, e: &ast::Expr, scope: Scope) -> Result<Expr, QueryError> {
        Ok(match e {
            ast::Expr::Identifier(id) => match scope {
                Scope::Row => Expr::Field(self.field(&id.value)),
                Scope::Group => {
                    let field = self.fields.iter().position(|f| *f == id.value);
                    match field.and_then(|f| self.keys.iter().position(|k| *k == f)) {
                        Some(k) => Expr::Key(k),
                        None => {
                            return refuse(format!("`{id}` must be in GROUP BY or inside an aggregate"));
                        }
                    }
                }
            },
            ast::Expr::CompoundIdentifier(_) => {
                return refuse(format!("nested fields are not supported yet: `{e}`"));
            }
            ast::Expr::Nested(inner) => self.expr(inner, scope)?,
            ast::Expr::Value(v) => Expr::Lit(literal(&v.value)?),
            ast::Expr::UnaryOp { op: UnaryOperator::Not, expr } => Expr::Not(Box::new(self.expr(expr, scope)?)),
            ast::Expr::UnaryOp { op: UnaryOperator::Minus, expr } => Expr::Neg(Box::new(self.expr(expr, scope)?)),
            ast::Expr::UnaryOp { op: UnaryOperator::Plus, expr } => self.expr(expr, scope)?,
            ast::Expr::IsNull(inner) => Expr::IsNull(Box::new(self.expr(inner, scope)?), false),
            ast::Expr::IsNotNull(inner) => Expr::IsNull(Box::new(self.expr(inner, scope)?), true),
            ast::Expr::BinaryOp { left, op, right } => {
                let op = match op {
                    BinaryOperator::And => BinOp::And,
                    BinaryOperator::Or => BinOp::Or,
                    BinaryOperator::Eq => BinOp::Eq,
                    BinaryOperator::NotEq => BinOp::NotEq,
                    BinaryOperator::Lt => BinOp::Lt,
                    BinaryOperator::LtEq => BinOp::LtEq,
                    BinaryOperator::Gt => BinOp::Gt,
                    BinaryOperator::GtEq => BinOp::GtEq,
                    BinaryOperator::Plus => BinOp::Plus,
                    BinaryOperator::Minus => BinOp::Minus,
                    BinaryOperator::Multiply => BinOp::Mul,
                    BinaryOperator::Divide => BinOp::Div,
                    BinaryOperator::Modulo => BinOp::Mod,
                    other => return refuse(format!("the operator `{other}` is not supported: `{e}`")),
                };
                Expr::Binary(Box::new(self.expr(left, scope)?), op, Box::new(self.expr(right, scope)?))
            }
            ast::Expr::Function(f) if aggregate_name(f).is_some() => match scope {
                Scope::Row => return refuse(format!("aggregates are not allowed here: `{e}`")),
                Scope::Group => Expr::Agg(self.aggregate(f)?),
            },
            ast::Expr::Function(f) if window_name(f).is_some() => {
                return refuse(format!("windows belong in GROUP BY: `{e}`"));
            }
            ast::Expr::Function(f) => {
                return refuse(format!(
                    "unknown function `{}` in `{e}` (aggregates: COUNT, SUM, AVG, MIN, MAX, STDEV, STDEVP, VAR, VARP, PERCENTILE_CONT, PERCENTILE_DISC)",
                    f.name
                ));
            }
            other => return refuse(format!("unsupported expression: `{other}`")),
        })
    }

    fn aggregate(&mut self, f: &ast::Function) -> Result<usize, QueryError> {
        let name = aggregate_name(f).expect("checked by the caller");
        let percentile = name.starts_with("PERCENTILE");
        let bad = |why: &str| {
            let usage = if percentile {
                format!("{name}(fraction) WITHIN GROUP (ORDER BY field)")
            } else {
                format!("{name}(field)")
            };
            QueryError(format!("{why}: `{f}`; expected {usage}"))
        };
        if !percentile && !f.within_group.is_empty() {
            return Err(bad("WITHIN GROUP applies only to percentiles"));
        }
        let args = plain_args(f);
        let (func, arg) = if name == "COUNT" && is_count_star(f) {
            (AggFunc::CountAll, None)
        } else if percentile {
            let p = match args.as_deref() {
                Some([ast::Expr::Value(v)]) => match &v.value {
                    ast::Value::Number(n, _) => n.parse::<f64>().ok().filter(|p| (0.0..=1.0).contains(p)),
                    _ => None,
                },
                _ => None,
            };
            let p = p.ok_or_else(|| bad("the fraction must be a number from 0 to 1"))?;
            let field = match f.within_group.as_slice() {
                [o] if o.options.to_string().is_empty() && o.with_fill.is_none() => match &o.expr {
                    ast::Expr::Identifier(id) => id.value.clone(),
                    _ => return Err(bad("percentiles order by a field")),
                },
                _ => return Err(bad("missing WITHIN GROUP (ORDER BY field)")),
            };
            let func = if name == "PERCENTILE_CONT" { AggFunc::PercentileCont(p) } else { AggFunc::PercentileDisc(p) };
            (func, Some(field))
        } else {
            let field = match args.as_deref() {
                Some([ast::Expr::Identifier(id)]) => id.value.clone(),
                Some([other]) => return Err(bad(&format!("aggregate arguments must be a field, not `{other}`"))),
                _ => return Err(bad("unsupported arguments")),
            };
            let func = match name.as_str() {
                "COUNT" => AggFunc::Count,
                "SUM" => AggFunc::Sum,
                "AVG" => AggFunc::Avg,
                "MIN" => AggFunc::Min,
                "MAX" => AggFunc::Max,
                "STDEV" => AggFunc::Stdev,
                "STDEVP" => AggFunc::StdevP,
                "VAR" => AggFunc::Var,
                _ => AggFunc::VarP,
            };
            (func, Some(field))
        };
        let arg = arg.map_or(0, |field| self.field(&field));
        let entry = (func, arg);
        Ok(match self.aggregates.iter().position(|a| *a == entry) {
            Some(i) => i,
            None => {
                self.aggregates.push(entry);
                self.aggregates.len() - 1
            }
        })
    }
}

fn is_count_star(f: &ast::Function) -> bool {
    matches!(&f.args, FunctionArguments::List(l)
        if l.duplicate_treatment.is_none() && l.clauses.is_empty()
        && matches!(l.args.as_slice(), [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)]))
        && f.filter.is_none()
        && f.over.is_none()
}

fn literal(v: &ast::Value) -> Result<Lit, QueryError> {
    Ok(match v {
        ast::Value::Number(n, _) => match n.parse::<f64>() {
            Ok(x) if x.is_finite() => Lit::Num(x),
            _ => return refuse(format!("`{n}` is not a number Weir can compute with")),
        },
        ast::Value::SingleQuotedString(s) => Lit::Str(s.clone()),
        ast::Value::Boolean(b) => Lit::Bool(*b),
        ast::Value::Null => Lit::Null,
        other => return refuse(format!("unsupported literal: `{other}`")),
    })
}
