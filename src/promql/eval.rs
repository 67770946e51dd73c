//! The evaluator: what a PromQL syntax tree means at one evaluation time.
//!
//! [`Evaluator::eval`] walks the tree for one step. A selector's data is loaded from the
//! [`Source`] the first time the selector is met, for every step of the query at once (its
//! node's address in the tree is the key, the tree outlives the evaluator), so a range query
//! of 11,000 steps asks the source once per selector, not once per step.
//!
//! Supported: instant and range selectors with `=`, `!=`, `=~`, `!~`, `offset` and `@`
//! (`start()`, `end()`); the functions `rate`, `irate`, `increase`, `delta`, the
//! `avg|min|max|sum|count|last|quantile_over_time` family, `abs`, `clamp_min`, `clamp_max`,
//! `round`, `time`, `timestamp`; the aggregations `sum`, `avg`, `min`, `max`, `count`,
//! `topk`, `bottomk`, `quantile` with `by`/`without`; arithmetic and comparison operators
//! (with `bool`) between scalars and vectors, vector pairs matched one-to-one with
//! `on`/`ignoring`. Anything else is refused naming it.

use super::functions::{self, OverTime};
use super::query::QueryError;
use super::value::{Labels, Sample, Series, Value};
use super::{Source, LOOKBACK_MS, MAX_POINTS};
use crate::storage::index::METRIC_LABEL;
use crate::storage::{MatchOp, Matcher};
use promql_parser::label::MatchOp as ParsedOp;
use promql_parser::parser::token::{
    T_ADD, T_AVG, T_BOTTOMK, T_COUNT, T_DIV, T_EQLC, T_GTE, T_GTR, T_LSS, T_LTE, T_MAX, T_MIN,
    T_MOD, T_MUL, T_NEQ, T_POW, T_QUANTILE, T_SUB, T_SUM, T_TOPK,
};
use promql_parser::parser::{
    token, AggregateExpr, AtModifier, BinaryExpr, Call, Expr, LabelModifier, MatrixSelector,
    Offset, VectorMatchCardinality, VectorSelector,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

/// Evaluates one query's tree at the times of its steps.
pub struct Evaluator<'a> {
    source: &'a dyn Source,
    /// The first and last evaluation time, in milliseconds.
    start_ms: i64,
    end_ms: i64,
    /// Every selector's series, loaded once, by the selector node's address.
    loaded: HashMap<usize, Vec<Series>>,
    /// Points loaded so far, checked against [`MAX_POINTS`].
    points: usize,
}

impl<'a> Evaluator<'a> {
    /// An evaluator for steps from `start_ms` to `end_ms` (a single time for an instant
    /// query); selectors load the whole span, whatever the step.
    pub fn new(source: &'a dyn Source, start_ms: i64, end_ms: i64) -> Self {
        Evaluator {
            source,
            start_ms,
            end_ms,
            loaded: HashMap::new(),
            points: 0,
        }
    }

    /// The value of `expr` at `t` (milliseconds).
    pub fn eval(&mut self, expr: &Expr, t: i64) -> Result<Value, QueryError> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(samples) => {
                    let negated = samples
                        .into_iter()
                        .map(|s| computed(s.labels.without_name(), -s.value, t))
                        .collect();
                    unique(negated).map(Value::Vector)
                }
                other => Err(QueryError::bad_data(format!(
                    "unary minus needs a scalar or an instant vector, got {}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => self.instant_selector(vs, t).map(Value::Vector),
            Expr::MatrixSelector(ms) => {
                let windows = self.reduce_windows(ms, t, |labels, points, _, _| {
                    Some(Series {
                        labels: labels.clone(),
                        points: points.to_vec(),
                    })
                })?;
                Ok(Value::Matrix(windows))
            }
            Expr::Call(call) => self.call(call, t),
            Expr::Aggregate(agg) => self.aggregate(agg, t),
            Expr::Binary(b) => self.binary(b, t),
            Expr::Subquery(_) => Err(QueryError::unsupported("a subquery")),
            Expr::Extension(_) => Err(QueryError::unsupported("an extension expression")),
        }
    }

    /// The series a selector names, loaded on first use for every step of the query: the
    /// points from the earliest evaluation time minus `window` to the latest, both moved by
    /// `offset` and `@`.
    fn load(&mut self, vs: &VectorSelector, window_ms: i64) -> Result<&[Series], QueryError> {
        let key = std::ptr::from_ref(vs) as usize;
        if !self.loaded.contains_key(&key) {
            let matchers = matchers_of(vs)?;
            let (first, last) = match self.at_ms(vs) {
                Some(at) => (at, at),
                None => (self.start_ms, self.end_ms),
            };
            let offset = offset_ms(vs);
            let from = first.saturating_sub(offset).saturating_sub(window_ms) + 1;
            let to = last.saturating_sub(offset);
            let selected = self
                .source
                .select(&matchers, from, to)
                .map_err(QueryError::unavailable)?;
            let mut series = Vec::with_capacity(selected.len());
            for (name, points) in selected {
                self.points += points.len();
                if self.points > MAX_POINTS {
                    return Err(QueryError::execution(format!(
                        "query processing would load too many samples into memory: more than {MAX_POINTS} points"
                    )));
                }
                series.push(Series {
                    labels: Labels::of_series(&name),
                    points,
                });
            }
            series.sort_by(|a, b| a.labels.cmp(&b.labels));
            self.loaded.insert(key, series);
        }
        Ok(self.loaded.get(&key).map_or(&[], Vec::as_slice))
    }

    /// Where a selector's `@` pins it, in milliseconds.
    fn at_ms(&self, vs: &VectorSelector) -> Option<i64> {
        vs.at.as_ref().map(|at| match at {
            AtModifier::Start => self.start_ms,
            AtModifier::End => self.end_ms,
            AtModifier::At(time) => system_time_ms(*time),
        })
    }

    /// The time a selector reads at when evaluated at `t`: `@` if given, minus `offset`.
    fn read_time(&self, vs: &VectorSelector, t: i64) -> i64 {
        self.at_ms(vs).unwrap_or(t).saturating_sub(offset_ms(vs))
    }

    /// Each series' newest point in the lookback window `(t' - 5m, t']`, `t'` the read time.
    fn instant_selector(&mut self, vs: &VectorSelector, t: i64) -> Result<Vec<Sample>, QueryError> {
        let at = self.read_time(vs, t);
        let series = self.load(vs, LOOKBACK_MS)?;
        Ok(series
            .iter()
            .filter_map(|s| {
                let end = s.points.partition_point(|&(pt, _)| pt <= at);
                let &(pt, value) = s.points.get(end.checked_sub(1)?)?;
                (pt > at - LOOKBACK_MS).then(|| Sample {
                    labels: s.labels.clone(),
                    value,
                    at_ms: pt,
                })
            })
            .collect())
    }

    /// `reduce` of each series' points in `(t' - range, t']` (series without any are left
    /// out) and the window's start and end; what it returns for them.
    fn reduce_windows<T>(
        &mut self,
        ms: &MatrixSelector,
        t: i64,
        mut reduce: impl FnMut(&Labels, &[(i64, f64)], i64, i64) -> Option<T>,
    ) -> Result<Vec<T>, QueryError> {
        let range = duration_ms(ms.range);
        let end = self.read_time(&ms.vs, t);
        let start = end.saturating_sub(range);
        let series = self.load(&ms.vs, range)?;
        Ok(series
            .iter()
            .filter_map(|s| {
                let from = s.points.partition_point(|&(pt, _)| pt <= start);
                let to = s.points.partition_point(|&(pt, _)| pt <= end);
                if from < to {
                    reduce(&s.labels, &s.points[from..to], start, end)
                } else {
                    None
                }
            })
            .collect())
    }

    fn call(&mut self, call: &Call, t: i64) -> Result<Value, QueryError> {
        let name = call.func.name;
        let args = &call.args.args;
        match name {
            "time" => Ok(Value::Scalar(t as f64 / 1000.0)),
            "rate" | "increase" | "delta" | "irate" => {
                let ms = matrix_arg(name, args.first().map(Box::as_ref))?;
                let out = self.reduce_windows(ms, t, |labels, points, start, end| {
                    let value = match name {
                        "rate" => functions::extrapolated_rate(points, start, end, true, true),
                        "increase" => functions::extrapolated_rate(points, start, end, true, false),
                        "delta" => functions::extrapolated_rate(points, start, end, false, false),
                        _ => functions::irate(points),
                    }?;
                    Some(computed(labels.without_name(), value, t))
                })?;
                unique(out).map(Value::Vector)
            }
            _ if OverTime::from_name(name).is_some() => {
                let reduction =
                    OverTime::from_name(name).ok_or_else(|| QueryError::unsupported(name))?;
                let (q, matrix) = if reduction == OverTime::Quantile {
                    let q = self.scalar_arg(name, args.first().map(Box::as_ref), t)?;
                    (q, args.get(1))
                } else {
                    (f64::NAN, args.first())
                };
                let ms = matrix_arg(name, matrix.map(Box::as_ref))?;
                let out = self.reduce_windows(ms, t, |labels, points, _, _| {
                    let value = reduction.apply(q, points)?;
                    let labels = if reduction.keeps_name() {
                        labels.clone()
                    } else {
                        labels.without_name()
                    };
                    Some(computed(labels, value, t))
                })?;
                unique(out).map(Value::Vector)
            }
            "abs" | "clamp_min" | "clamp_max" | "round" | "timestamp" => {
                let input = self.vector_arg(name, args.first().map(Box::as_ref), t)?;
                let parameter = match (name, args.get(1)) {
                    ("round", None) => 1.0,
                    (_, Some(arg)) => self.scalar_arg(name, Some(arg), t)?,
                    _ => f64::NAN,
                };
                let out = input
                    .into_iter()
                    .map(|s| {
                        let value = match name {
                            "abs" => s.value.abs(),
                            "clamp_min" => clamp_min(s.value, parameter),
                            "clamp_max" => clamp_max(s.value, parameter),
                            "round" => functions::round(s.value, parameter),
                            _ => s.at_ms as f64 / 1000.0,
                        };
                        computed(s.labels.without_name(), value, t)
                    })
                    .collect();
                unique(out).map(Value::Vector)
            }
            other => Err(QueryError::unsupported(format!("function {other}()"))),
        }
    }

    /// A scalar argument's value at `t`.
    fn scalar_arg(&mut self, func: &str, arg: Option<&Expr>, t: i64) -> Result<f64, QueryError> {
        let arg =
            arg.ok_or_else(|| QueryError::bad_data(format!("{func}() is missing an argument")))?;
        match self.eval(arg, t)? {
            Value::Scalar(v) => Ok(v),
            other => Err(QueryError::bad_data(format!(
                "expected a scalar argument for {func}(), got {}",
                other.type_name()
            ))),
        }
    }

    /// An instant vector argument's value at `t`.
    fn vector_arg(
        &mut self,
        func: &str,
        arg: Option<&Expr>,
        t: i64,
    ) -> Result<Vec<Sample>, QueryError> {
        let arg =
            arg.ok_or_else(|| QueryError::bad_data(format!("{func}() is missing an argument")))?;
        match self.eval(arg, t)? {
            Value::Vector(samples) => Ok(samples),
            other => Err(QueryError::bad_data(format!(
                "expected an instant vector for {func}(), got {}",
                other.type_name()
            ))),
        }
    }

    fn aggregate(&mut self, agg: &AggregateExpr, t: i64) -> Result<Value, QueryError> {
        let op = agg.op.id();
        let op_name = agg.op.to_string();
        let op_name = op_name.as_str();
        if !matches!(
            op,
            T_SUM | T_AVG | T_MIN | T_MAX | T_COUNT | T_TOPK | T_BOTTOMK | T_QUANTILE
        ) {
            return Err(QueryError::unsupported(format!("aggregation {op_name}")));
        }
        let param = match &agg.param {
            Some(p) => Some(self.scalar_arg(op_name, Some(p), t)?),
            None => None,
        };
        let input = self.vector_arg(op_name, Some(&agg.expr), t)?;
        let mut groups: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        for sample in input {
            let group = match &agg.modifier {
                None => Labels::default(),
                Some(LabelModifier::Include(by)) => sample.labels.keep(&by.labels),
                Some(LabelModifier::Exclude(without)) => {
                    sample.labels.without(&without.labels).without_name()
                }
            };
            groups.entry(group).or_default().push(sample);
        }
        let mut out = Vec::new();
        for (group, members) in groups {
            if matches!(op, T_TOPK | T_BOTTOMK) {
                let k = param.unwrap_or(f64::NAN);
                out.extend(select_k(members, k, op == T_TOPK, op_name)?);
                continue;
            }
            let values: Vec<f64> = members.iter().map(|s| s.value).collect();
            let value = match op {
                T_SUM => functions::sum(values.iter().copied()),
                T_AVG => functions::mean(&values),
                T_MIN => functions::min(values.iter().copied()),
                T_MAX => functions::max(values.iter().copied()),
                T_COUNT => values.len() as f64,
                _ => functions::quantile(param.unwrap_or(f64::NAN), &values),
            };
            out.push(computed(group, value, t));
        }
        Ok(Value::Vector(out))
    }

    fn binary(&mut self, b: &BinaryExpr, t: i64) -> Result<Value, QueryError> {
        let op = b.op.id();
        let op_name = b.op.to_string();
        let Some(operator) = Operator::of(op) else {
            return Err(QueryError::unsupported(format!(
                "the set operator {op_name}"
            )));
        };
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let matching = match &b.modifier {
            None => None,
            Some(m) => {
                if matches!(
                    m.card,
                    VectorMatchCardinality::ManyToOne(_) | VectorMatchCardinality::OneToMany(_)
                ) {
                    return Err(QueryError::unsupported(
                        "many-to-one matching (group_left/group_right)",
                    ));
                }
                if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
                    return Err(QueryError::unsupported("fill modifiers"));
                }
                m.matching.as_ref()
            }
        };
        let lhs = self.eval(&b.lhs, t)?;
        let rhs = self.eval(&b.rhs, t)?;
        match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                let value = operator.apply(l, r);
                Ok(Value::Scalar(
                    match (operator.is_comparison(), return_bool) {
                        (true, _) => bool_value(value.is_some()),
                        (false, _) => value.unwrap_or(f64::NAN),
                    },
                ))
            }
            (Value::Vector(v), Value::Scalar(s)) => {
                vector_scalar(v, s, operator, return_bool, false, t).map(Value::Vector)
            }
            (Value::Scalar(s), Value::Vector(v)) => {
                vector_scalar(v, s, operator, return_bool, true, t).map(Value::Vector)
            }
            (Value::Vector(l), Value::Vector(r)) => {
                vector_vector(l, r, operator, return_bool, matching, t).map(Value::Vector)
            }
            (l, r) => Err(QueryError::bad_data(format!(
                "binary {op_name} between {} and {} is not allowed",
                l.type_name(),
                r.type_name()
            ))),
        }
    }
}

/// A binary operator other than the set operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
}

impl Operator {
    fn of(token: token::TokenId) -> Option<Operator> {
        Some(match token {
            T_ADD => Operator::Add,
            T_SUB => Operator::Sub,
            T_MUL => Operator::Mul,
            T_DIV => Operator::Div,
            T_MOD => Operator::Mod,
            T_POW => Operator::Pow,
            T_EQLC => Operator::Eq,
            T_NEQ => Operator::Ne,
            T_GTR => Operator::Gt,
            T_LSS => Operator::Lt,
            T_GTE => Operator::Ge,
            T_LTE => Operator::Le,
            _ => return None,
        })
    }

    fn is_comparison(self) -> bool {
        matches!(
            self,
            Operator::Eq | Operator::Ne | Operator::Gt | Operator::Lt | Operator::Ge | Operator::Le
        )
    }

    /// The result of `l op r`: for arithmetic the value, for a comparison `Some(l)` when it
    /// holds and `None` when not.
    fn apply(self, l: f64, r: f64) -> Option<f64> {
        let holds = |c: bool| c.then_some(l);
        match self {
            Operator::Add => Some(l + r),
            Operator::Sub => Some(l - r),
            Operator::Mul => Some(l * r),
            Operator::Div => Some(l / r),
            // Rust's `%` on floats is C's fmod, as Go's math.Mod: the sign of the dividend.
            Operator::Mod => Some(l % r),
            Operator::Pow => Some(l.powf(r)),
            Operator::Eq => holds(l == r),
            Operator::Ne => holds(l != r),
            Operator::Gt => holds(l > r),
            Operator::Lt => holds(l < r),
            Operator::Ge => holds(l >= r),
            Operator::Le => holds(l <= r),
        }
    }
}

fn bool_value(holds: bool) -> f64 {
    if holds {
        1.0
    } else {
        0.0
    }
}

/// A vector and a scalar (`scalar_left`: the scalar is the left operand). Arithmetic and
/// `bool` comparisons drop the metric name; a filtering comparison keeps the vector's
/// samples (value and name) for which it holds.
fn vector_scalar(
    samples: Vec<Sample>,
    scalar: f64,
    operator: Operator,
    return_bool: bool,
    scalar_left: bool,
    t: i64,
) -> Result<Vec<Sample>, QueryError> {
    let mut out = Vec::with_capacity(samples.len());
    for s in samples {
        let (l, r) = if scalar_left {
            (scalar, s.value)
        } else {
            (s.value, scalar)
        };
        let result = operator.apply(l, r);
        if !operator.is_comparison() {
            out.push(computed(
                s.labels.without_name(),
                result.unwrap_or(f64::NAN),
                t,
            ));
        } else if return_bool {
            out.push(computed(
                s.labels.without_name(),
                bool_value(result.is_some()),
                t,
            ));
        } else if result.is_some() {
            out.push(s);
        }
    }
    unique(out)
}

/// Two vectors matched one-to-one: each side's samples by their labels (without
/// `__name__`), or only the `on` labels, or all but the `ignoring` ones.
fn vector_vector(
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    operator: Operator,
    return_bool: bool,
    matching: Option<&LabelModifier>,
    t: i64,
) -> Result<Vec<Sample>, QueryError> {
    let signature = |labels: &Labels| match matching {
        None => labels.without_name(),
        Some(LabelModifier::Include(on)) => labels.keep(&on.labels),
        Some(LabelModifier::Exclude(ignoring)) => labels.without(&ignoring.labels).without_name(),
    };
    let mut right: HashMap<Labels, &Sample> = HashMap::new();
    for s in &rhs {
        if right.insert(signature(&s.labels), s).is_some() {
            return Err(QueryError::execution(format!(
                "found duplicate series for the match group {} on the right hand-side of the operation: many-to-many matching not allowed: matching labels must be unique on one side",
                describe(&signature(&s.labels))
            )));
        }
    }
    let mut matched: HashSet<Labels> = HashSet::new();
    let mut out = Vec::new();
    for l in lhs {
        let sig = signature(&l.labels);
        let Some(r) = right.get(&sig) else {
            continue;
        };
        if !matched.insert(sig.clone()) {
            return Err(QueryError::execution(format!(
                "multiple matches for labels {}: many-to-one matching must be explicit (group_left/group_right)",
                describe(&sig)
            )));
        }
        let result = operator.apply(l.value, r.value);
        let (value, drop_name) = match (operator.is_comparison(), return_bool) {
            (false, _) => (result.unwrap_or(f64::NAN), true),
            (true, true) => (bool_value(result.is_some()), true),
            (true, false) => match result {
                Some(v) => (v, false),
                None => continue,
            },
        };
        let mut labels = if drop_name {
            l.labels.without_name()
        } else {
            l.labels.clone()
        };
        labels = match matching {
            Some(LabelModifier::Include(on)) => labels.keep(&on.labels),
            Some(LabelModifier::Exclude(ignoring)) => labels.without(&ignoring.labels),
            None => labels,
        };
        let at_ms = if drop_name || matching.is_some() {
            t
        } else {
            l.at_ms
        };
        out.push(Sample {
            labels,
            value,
            at_ms,
        });
    }
    unique(out)
}

/// The `k` greatest (`top`) or least samples of one group, in that order; `NaN`s last.
fn select_k(
    mut members: Vec<Sample>,
    k: f64,
    top: bool,
    op_name: &str,
) -> Result<Vec<Sample>, QueryError> {
    if k.is_nan() || k.is_infinite() {
        return Err(QueryError::execution(format!(
            "parameter k of {op_name} must be a finite number, got {k}"
        )));
    }
    if k < 1.0 {
        return Ok(Vec::new());
    }
    members.sort_by(|a, b| match (a.value.is_nan(), b.value.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ if top => b.value.total_cmp(&a.value),
        _ => a.value.total_cmp(&b.value),
    });
    // `k` is at least 1 and finite; a huge `k` keeps the whole group.
    members.truncate(k.min(members.len() as f64) as usize);
    Ok(members)
}

/// A sample computed at `t` (its value is no stored point's).
fn computed(labels: Labels, value: f64, t: i64) -> Sample {
    Sample {
        labels,
        value,
        at_ms: t,
    }
}

/// The vector, refused when two samples share a label set (a function or operator dropped
/// the metric name of series that differed only in it).
fn unique(samples: Vec<Sample>) -> Result<Vec<Sample>, QueryError> {
    let mut seen = HashSet::with_capacity(samples.len());
    for s in &samples {
        if !seen.insert(&s.labels) {
            return Err(QueryError::execution(format!(
                "vector cannot contain metrics with the same labelset {}",
                describe(&s.labels)
            )));
        }
    }
    Ok(samples)
}

/// `{a="x", b="y"}`, for error messages.
fn describe(labels: &Labels) -> String {
    let inner: Vec<String> = labels
        .pairs()
        .iter()
        .map(|(n, v)| format!("{n}={v:?}"))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

fn clamp_min(v: f64, min: f64) -> f64 {
    if v.is_nan() || min.is_nan() {
        return f64::NAN;
    }
    v.max(min)
}

fn clamp_max(v: f64, max: f64) -> f64 {
    if v.is_nan() || max.is_nan() {
        return f64::NAN;
    }
    v.min(max)
}

/// A function's range-vector argument, which must be a range selector (not a subquery).
fn matrix_arg<'e>(func: &str, arg: Option<&'e Expr>) -> Result<&'e MatrixSelector, QueryError> {
    match arg {
        Some(Expr::MatrixSelector(ms)) => Ok(ms),
        Some(Expr::Paren(p)) => matrix_arg(func, Some(&p.expr)),
        Some(Expr::Subquery(_)) => Err(QueryError::unsupported(format!("a subquery in {func}()"))),
        _ => Err(QueryError::bad_data(format!(
            "expected a range vector selector in call to function {func}()"
        ))),
    }
}

/// A selector's matchers in the store's terms, its metric name as `__name__="name"`.
pub(crate) fn matchers_of(vs: &VectorSelector) -> Result<Vec<Matcher>, QueryError> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(QueryError::unsupported("`or` between label matchers"));
    }
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        out.push(Matcher::equal(METRIC_LABEL, name));
    }
    for m in &vs.matchers.matchers {
        let op = match m.op {
            ParsedOp::Equal => MatchOp::Equal,
            ParsedOp::NotEqual => MatchOp::NotEqual,
            ParsedOp::Re(_) => MatchOp::Regex,
            ParsedOp::NotRe(_) => MatchOp::NotRegex,
        };
        out.push(
            Matcher::new(&m.name, op, &m.value).map_err(|e| QueryError::bad_data(e.to_string()))?,
        );
    }
    Ok(out)
}

/// A selector's `offset` in milliseconds (negative looks ahead).
fn offset_ms(vs: &VectorSelector) -> i64 {
    match &vs.offset {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(*d),
        Some(Offset::Neg(d)) => -duration_ms(*d),
    }
}

fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A time as milliseconds since the epoch (negative before it).
fn system_time_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => duration_ms(after),
        Err(before) => -duration_ms(before.duration()),
    }
}
