//! The whole cluster as a PromQL [`Source`]: each selector asks every reachable member for
//! its copy of the series it selects (`POST /internal/select`) and keeps the fullest copy of
//! each, so any node answers for the cluster and a series' replicas are never counted twice
//! (`query::coordinate`). An answer that could miss series — `--replication` or more
//! members unreachable — is an error (Prometheus's `unavailable`), never a silent gap.

use super::source::{names_of, values_of};
use super::{SelectedSeries, Source};
use crate::cluster::peer::PeerLink;
use crate::cluster::Cluster;
use crate::query::coordinate::every_member;
use crate::query::select::{self, SelectRequest, SeriesPoints, MAX_POINTS_PER_SERIES};
use crate::storage::index::{MatchOp, METRIC_LABEL};
use crate::storage::{Engine, Matcher, SeriesKey, TimeRange, Timestamp};

/// A [`Source`] over every member of the cluster, this node's own copies read directly.
pub struct ClusterSource<'a> {
    engine: &'a Engine,
    node_id: &'a str,
    cluster: &'a Cluster,
    link: PeerLink<'a>,
}

impl<'a> ClusterSource<'a> {
    pub fn new(
        engine: &'a Engine,
        node_id: &'a str,
        cluster: &'a Cluster,
        link: PeerLink<'a>,
    ) -> ClusterSource<'a> {
        ClusterSource {
            engine,
            node_id,
            cluster,
            link,
        }
    }

    /// Every member's copy of the series `matchers` select in `[start_ms, end_ms]`, the
    /// fullest of each, with up to `limit` points (0: none).
    fn gather(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<SeriesPoints>, String> {
        if start_ms > end_ms {
            return Ok(Vec::new());
        }
        // No matchers (a label listing without `match[]`): every series has a metric.
        let matchers = if matchers.is_empty() {
            vec![Matcher::new(METRIC_LABEL, MatchOp::Regex, ".+").map_err(|e| e.to_string())?]
        } else {
            matchers.to_vec()
        };
        // Bounds outside what the store keeps are open ones: nothing lies beyond them.
        let start = (start_ms > 0).then_some(Timestamp(start_ms));
        let end = (end_ms < Timestamp::LATEST.0).then_some(Timestamp(end_ms));
        let request = SelectRequest::new(matchers, TimeRange::new(start, end), limit)
            .map_err(|e| e.to_string())?;
        let body = request.to_body().map_err(|e| e.to_string())?;
        let local =
            || select::select(self.engine, self.node_id, &request).map_err(|e| e.to_string());
        let found = every_member(
            self.cluster,
            self.link,
            None,
            "/internal/select",
            &body,
            &local,
        )
        .map_err(|none| format!("no owner of {} answered", none.series))?;
        if found.partial {
            let failed: Vec<String> = found
                .failed
                .iter()
                .map(|f| format!("{} ({})", f.node, f.error))
                .collect();
            return Err(format!(
                "too many members unreachable to answer for every series: {}",
                failed.join(", ")
            ));
        }
        Ok(found.copies)
    }

    fn keys(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesKey>, String> {
        self.gather(matchers, start_ms, end_ms, 0)?
            .iter()
            .map(|copy| copy.series.key().map_err(|e| e.to_string()))
            .collect()
    }
}

impl Source for ClusterSource<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SelectedSeries>, String> {
        self.gather(matchers, start_ms, end_ms, MAX_POINTS_PER_SERIES)?
            .into_iter()
            .filter(|copy| !copy.points.is_empty())
            .map(|copy| Ok((copy.series.key().map_err(|e| e.to_string())?, copy.points)))
            .collect()
    }

    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesKey>, String> {
        self.keys(matchers, start_ms, end_ms)
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, String> {
        Ok(names_of(&self.keys(matchers, start_ms, end_ms)?))
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, String> {
        Ok(values_of(name, &self.keys(matchers, start_ms, end_ms)?))
    }
}
