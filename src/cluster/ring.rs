//! The consistent-hash ring that places series on nodes.
//!
//! Each node gets [`VIRTUAL_NODES`] points on a 32-bit ring at `crc32("{node_id}#{i}")`. A
//! series key `device_id:metric_name` hashes with CRC32 to a position; walking clockwise
//! from it, the first `n` distinct nodes are its *preference list*: the primary, then the
//! replicas. The ring depends only on the set of node ids, so every node with the same
//! membership computes the same owners, whatever order it learned them in.

use crate::storage::SeriesKey;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Virtual nodes per physical node (the original's figure).
pub const VIRTUAL_NODES: usize = 150;

/// The ring of a set of node ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ring {
    /// `(position, index into nodes)`, sorted by position then node id.
    points: Vec<(u32, usize)>,
    /// Node ids, sorted.
    nodes: Vec<String>,
}

impl Ring {
    pub fn new<I, S>(node_ids: I) -> Ring
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut nodes: Vec<String> = node_ids.into_iter().map(Into::into).collect();
        nodes.sort();
        nodes.dedup();
        let mut points = Vec::with_capacity(nodes.len() * VIRTUAL_NODES);
        for (index, id) in nodes.iter().enumerate() {
            for v in 0..VIRTUAL_NODES {
                points.push((crc32fast::hash(format!("{id}#{v}").as_bytes()), index));
            }
        }
        // Ties (two virtual nodes on one position) break by node id: still deterministic.
        points.sort_unstable();
        Ring { points, nodes }
    }

    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The routing key of a series, as the original computes it.
    pub fn routing_key(device_id: &str, metric_name: &str) -> String {
        format!("{device_id}:{metric_name}")
    }

    /// Where `series` sits on the ring. A series the original API can name (a `device_id`
    /// and no other label) keeps the original's key, so an upgraded cluster keeps every
    /// such series on the owners it already has; any other series hashes its canonical
    /// text (`metric{a="x",device_id="d"}`), so series that differ in one label spread.
    pub fn series_key(series: &SeriesKey) -> Cow<'_, str> {
        if series.is_device_only() {
            Cow::Owned(Ring::routing_key(series.device_id(), series.metric_name()))
        } else {
            Cow::Borrowed(series.as_str())
        }
    }

    /// The first `n` distinct nodes clockwise from `key`'s position (fewer if the ring
    /// has fewer nodes): primary first.
    pub fn preference_list(&self, key: &str, n: usize) -> Vec<&str> {
        let mut owners: Vec<&str> = Vec::with_capacity(n.min(self.nodes.len()));
        if self.points.is_empty() || n == 0 {
            return owners;
        }
        let hash = crc32fast::hash(key.as_bytes());
        let start = self.points.partition_point(|&(p, _)| p < hash);
        for i in 0..self.points.len() {
            let (_, index) = self.points[(start + i) % self.points.len()];
            let id = self.nodes[index].as_str();
            if !owners.contains(&id) {
                owners.push(id);
                if owners.len() == n.min(self.nodes.len()) {
                    break;
                }
            }
        }
        owners
    }

    /// The fraction of the hash space for which each node is the primary (sums to 1).
    pub fn primary_share(&self) -> BTreeMap<String, f64> {
        let mut share: BTreeMap<String, f64> =
            self.nodes.iter().map(|id| (id.clone(), 0.0)).collect();
        let total = f64::from(u32::MAX) + 1.0;
        for (i, &(position, _)) in self.points.iter().enumerate() {
            // A position owns the arc from the previous position (exclusive) to itself.
            let previous = if i == 0 {
                self.points[self.points.len() - 1].0
            } else {
                self.points[i - 1].0
            };
            let arc = f64::from(position.wrapping_sub(previous));
            let arc = if self.points.len() == 1 { total } else { arc };
            let (_, index) = self.points[i];
            *share.entry(self.nodes[index].clone()).or_default() += arc / total;
        }
        share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preference_list_is_independent_of_join_order() {
        let a = Ring::new(["polaris", "sirius", "vega"]);
        let b = Ring::new(["vega", "polaris", "sirius", "vega"]);
        assert_eq!(a, b);
        for d in 0..200 {
            let key = Ring::routing_key(&format!("sensor_{d}"), "temperature");
            assert_eq!(a.preference_list(&key, 2), b.preference_list(&key, 2));
        }
    }

    #[test]
    fn preference_list_has_distinct_nodes_and_is_capped_by_ring_size() {
        let ring = Ring::new(["polaris", "sirius", "vega"]);
        for d in 0..100 {
            let key = Ring::routing_key(&format!("d{d}"), "m");
            let owners = ring.preference_list(&key, 2);
            assert_eq!(owners.len(), 2);
            assert_ne!(owners[0], owners[1]);
            assert_eq!(ring.preference_list(&key, 5).len(), 3);
        }
        assert!(Ring::new(Vec::<String>::new())
            .preference_list("x", 2)
            .is_empty());
    }

    #[test]
    fn golden_placement_of_a_few_keys() {
        // A change here moves data between nodes of an upgraded cluster: never silent.
        let ring = Ring::new(["polaris", "sirius", "vega"]);
        let placed: Vec<Vec<&str>> = ["sensor_1:temperature", "sensor_2:humidity", "a:b"]
            .iter()
            .map(|k| ring.preference_list(k, 2))
            .collect();
        assert_eq!(placed, golden());
    }

    fn golden() -> Vec<Vec<&'static str>> {
        vec![
            vec!["polaris", "sirius"],
            vec!["sirius", "polaris"],
            vec!["sirius", "vega"],
        ]
    }

    #[test]
    fn device_only_series_keep_the_original_key_and_labelled_ones_hash_their_text() {
        let plain = SeriesKey::new("sensor_1", "temperature").unwrap();
        assert_eq!(Ring::series_key(&plain), "sensor_1:temperature");
        let labelled =
            SeriesKey::with_labels("temperature", [("device_id", "sensor_1"), ("room", "lab")])
                .unwrap();
        assert_eq!(
            Ring::series_key(&labelled),
            r#"temperature{device_id="sensor_1",room="lab"}"#
        );
        let ring = Ring::new(["polaris", "sirius", "vega"]);
        let spread: std::collections::BTreeSet<&str> = (0..30)
            .map(|i| {
                let room = format!("room{i}");
                let key =
                    SeriesKey::with_labels("t", [("device_id", "d"), ("room", &room)]).unwrap();
                ring.preference_list(&Ring::series_key(&key), 1)[0]
            })
            .collect();
        assert_eq!(
            spread.len(),
            3,
            "one device's labelled series spread over the nodes"
        );
    }

    #[test]
    fn shares_sum_to_one_and_are_roughly_even() {
        let ring = Ring::new(["polaris", "sirius", "vega"]);
        let share = ring.primary_share();
        let total: f64 = share.values().sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        for (id, s) in &share {
            assert!((0.2..0.47).contains(s), "{id} owns {s}");
        }
        assert_eq!(Ring::new(["solo"]).primary_share()["solo"], 1.0);
    }

    #[test]
    fn adding_a_node_moves_only_keys_to_it() {
        let three = Ring::new(["polaris", "sirius", "vega"]);
        let four = Ring::new(["polaris", "sirius", "vega", "node_a"]);
        let mut moved = 0;
        for d in 0..1000 {
            let key = Ring::routing_key(&format!("sensor_{d}"), "t");
            let before = three.preference_list(&key, 1)[0];
            let after = four.preference_list(&key, 1)[0];
            if before != after {
                assert_eq!(after, "node_a");
                moved += 1;
            }
        }
        assert!((150..350).contains(&moved), "{moved} of 1000 moved");
    }
}
