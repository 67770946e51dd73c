//! PromQL evaluation for the Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`).
//!
//! The text of a query is parsed by the `promql-parser` crate into its syntax tree; what a
//! tree means is decided here. A query runs in three steps:
//!
//! 1. [`query::instant`] / [`query::range`] check the times (a range query has at most
//!    [`MAX_STEPS`] steps, aligned as Prometheus aligns them: `start`, `start + step`, … up
//!    to and including `end`) and parse the text.
//! 2. [`eval::Evaluator`] walks the tree once per evaluation time. The first time it meets a
//!    selector it loads, from a [`Source`], every point the selector can need over all steps
//!    (one call per selector, at most [`MAX_POINTS`] points per query), then slices that per
//!    step: an instant selector takes the newest point of each series in the 5-minute
//!    lookback window `(t - 5m, t]`, a range selector every point in `(t - range, t]`, as
//!    Prometheus 3 does; `offset` and `@` move `t`.
//! 3. [`functions`] holds the arithmetic of one step: rates with Prometheus's extrapolation,
//!    the `*_over_time` family, rounding and clamping, aggregation and quantiles.
//!
//! Values are [`value::Value`]s: a scalar, a string, an instant vector (labelled samples) or
//! a range vector. A series' labels are its metric as `__name__` plus its labels; functions
//! and arithmetic that change a value drop `__name__` as Prometheus does.
//!
//! The [`Source`] trait is where points come from: [`LocalSource`] reads this node's engine,
//! [`ClusterSource`] asks every member for its copy of each selected series and keeps the
//! fullest, without the evaluator changing.

pub mod cluster_source;
pub mod eval;
pub mod functions;
pub mod query;
pub mod source;
pub mod value;

pub use cluster_source::ClusterSource;
pub use query::{QueryError, QueryErrorKind};
pub use source::{LocalSource, SelectedSeries, Source};

/// The most evaluation steps a range query may have (Prometheus's limit).
pub const MAX_STEPS: i64 = 11_000;

/// The most raw points one query may load from its [`Source`].
pub const MAX_POINTS: usize = 50_000_000;

/// How far back an instant selector looks for a series' newest point, in milliseconds.
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;
