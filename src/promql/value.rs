//! The values a PromQL expression evaluates to at one time: a scalar, a string, an instant
//! vector (one sample per series) or a range vector (a run of points per series), and the
//! label sets that name their series.

use crate::storage::index::METRIC_LABEL;
use crate::storage::SeriesKey;

/// A series' labels, `__name__` (the metric) among them, sorted by name, names unique.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// The labels of a stored series: its metric as `__name__`, then its labels.
    pub fn of_series(key: &SeriesKey) -> Labels {
        let mut pairs = Vec::with_capacity(key.labels().len() + 1);
        pairs.push((METRIC_LABEL.to_string(), key.metric_name().to_string()));
        pairs.extend(key.labels().iter().cloned());
        pairs.sort();
        Labels(pairs)
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The value of label `name`, `""` when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// These labels without `__name__`.
    pub fn without_name(&self) -> Labels {
        self.without(&[METRIC_LABEL.to_string()])
    }

    /// These labels without any of `names`.
    pub fn without(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(n, _)| !names.contains(n))
                .cloned()
                .collect(),
        )
    }

    /// Only those of these labels named in `names`.
    pub fn keep(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(n, _)| names.contains(n))
                .cloned()
                .collect(),
        )
    }
}

/// One series' value at one evaluation time.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
    /// When the point was taken: the stored point's time for a selector's sample (what
    /// `timestamp()` returns), the evaluation time for a computed one. Milliseconds.
    pub at_ms: i64,
}

/// One series' points, oldest first, timestamps in milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

/// What an expression evaluates to at one time.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(f64),
    String(String),
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

impl Value {
    /// The type's name as Prometheus's errors and `resultType` spell it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}
