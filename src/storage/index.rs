//! The label index: which series carry which label values, so a selector such as
//! `temperature{room="lab",device_id=~"sensor_.*"}` finds its series without scanning them
//! all.
//!
//! An inverted index in memory: label name → label value → postings (the ids of the series
//! with that value, sorted). The metric name is indexed as the reserved label `__name__`
//! (label names starting with `__` are refused on series, so it cannot clash). Each label
//! name and each distinct value is stored once, however many series share it; a value held
//! by one series keeps its id inline instead of in a one-element vector.
//!
//! Matchers follow Prometheus: `=`, `!=`, `=~`, `!~`; regexes are fully anchored
//! (`^(?:re)$`); a series without the label compares as if it had the value `""`, so
//! `room!="lab"` and `room=""` match series without a room and `room=~".*"` matches every
//! series. [`Index::select`] intersects its matchers; a selector of only negative or
//! empty-matching matchers is answered here (from every series), the API decides whether to
//! allow it.
//!
//! Not persisted: the index is derived data. The source of truth on disk is the WAL and the
//! segments, which the engine loads into its series map at open anyway; building the index
//! from that map is one pass over the series (O(series)), cheaper than reading, checking and
//! trusting a second file that could disagree with the data it describes.

use crate::error::{Error, Result};
use crate::storage::series_key::KeyHashState;
use crate::storage::SeriesKey;
use regex::{Regex, RegexBuilder};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// The label name the metric name is indexed under.
pub const METRIC_LABEL: &str = "__name__";

/// Longest regex source a matcher accepts, in bytes.
pub const MAX_REGEX_LEN: usize = 4096;

/// Most heap a compiled matcher regex may take (`RegexBuilder::size_limit`), in bytes.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// How a matcher compares a label's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`, fully anchored
    Regex,
    /// `!~`, fully anchored
    NotRegex,
}

impl MatchOp {
    /// The operator from its text (`=`, `!=`, `=~`, `!~`).
    pub fn parse(op: &str) -> Result<MatchOp> {
        match op {
            "=" => Ok(MatchOp::Equal),
            "!=" => Ok(MatchOp::NotEqual),
            "=~" => Ok(MatchOp::Regex),
            "!~" => Ok(MatchOp::NotRegex),
            other => Err(Error::invalid(
                "matcher",
                format!("{other:?} is not one of =, !=, =~, !~"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One condition on one label: `name op "value"`.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    /// Compiled, anchored, for the regex ops.
    regex: Option<Regex>,
}

impl Matcher {
    /// A matcher; for `=~` and `!~` the regex is compiled here, and a bad or oversized one is
    /// refused naming the matcher.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher> {
        let regex = match op {
            MatchOp::Equal | MatchOp::NotEqual => None,
            MatchOp::Regex | MatchOp::NotRegex => {
                let field = format!("matcher {name}{}{value:?}", op.as_str());
                if value.len() > MAX_REGEX_LEN {
                    return Err(Error::invalid(
                        field,
                        format!("regex longer than {MAX_REGEX_LEN} bytes"),
                    ));
                }
                let compiled = RegexBuilder::new(&format!("^(?:{value})$"))
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| Error::invalid(field, format!("bad regex: {e}")))?;
                Some(compiled)
            }
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// `name="value"`.
    pub fn equal(name: &str, value: &str) -> Matcher {
        Matcher {
            name: name.to_string(),
            op: MatchOp::Equal,
            value: value.to_string(),
            regex: None,
        }
    }

    /// Whether a label value (`""` for an absent label) passes.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            // Regex ops are only built with their regex (see `new`).
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }

    /// Whether `key` passes (its metric for `__name__`, `""` for a label it lacks).
    pub fn matches_series(&self, key: &SeriesKey) -> bool {
        let value = if self.name == METRIC_LABEL {
            key.metric_name()
        } else {
            key.label(&self.name).unwrap_or("")
        };
        self.matches(value)
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

/// The sorted ids of the series holding one label value. A value of one series (a host
/// name, a serial number) keeps its id inline: no allocation for it.
#[derive(Debug)]
enum Postings {
    One(u32),
    Many(Vec<u32>),
}

impl Postings {
    fn as_slice(&self) -> &[u32] {
        match self {
            Postings::One(id) => std::slice::from_ref(id),
            Postings::Many(ids) => ids,
        }
    }

    fn insert(&mut self, id: u32) {
        match self {
            Postings::One(only) if *only == id => {}
            Postings::One(only) => {
                let mut ids = vec![*only, id];
                ids.sort_unstable();
                *self = Postings::Many(ids);
            }
            Postings::Many(ids) => match ids.last() {
                // Ids are mostly handed out in increasing order: appending is the common case.
                Some(&last) if last < id => ids.push(id),
                _ => {
                    if let Err(at) = ids.binary_search(&id) {
                        ids.insert(at, id);
                    }
                }
            },
        }
    }

    /// Removes `id`; returns whether the list is now empty.
    fn remove(&mut self, id: u32) -> bool {
        match self {
            Postings::One(only) => *only == id,
            Postings::Many(ids) => {
                if let Ok(at) = ids.binary_search(&id) {
                    ids.remove(at);
                }
                match ids.as_slice() {
                    [] => true,
                    &[last] => {
                        *self = Postings::One(last);
                        false
                    }
                    _ => false,
                }
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Postings::One(_) => 0,
            Postings::Many(ids) => ids.capacity() * std::mem::size_of::<u32>(),
        }
    }
}

/// The inverted index of a set of series. Not synchronised: the engine keeps it behind a
/// lock.
#[derive(Default)]
pub struct Index {
    /// Series by id; `None` for a free id.
    series: Vec<Option<SeriesKey>>,
    ids: HashMap<SeriesKey, u32, KeyHashState>,
    /// Ids freed by removals, reused by the next additions.
    free: Vec<u32>,
    /// Label name → value → postings. Each name and each distinct value is stored once.
    postings: HashMap<Box<str>, BTreeMap<Box<str>, Postings>>,
}

impl Index {
    pub fn new() -> Index {
        Index::default()
    }

    /// How many series are indexed.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Indexes `key`; a key already indexed is left as it is. Returns whether it was new.
    pub fn add(&mut self, key: &SeriesKey) -> bool {
        if self.ids.contains_key(key) {
            return false;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.series[id as usize] = Some(key.clone());
                id
            }
            None => {
                // More than 4 billion series would not fit in memory long before this.
                let id = u32::try_from(self.series.len()).unwrap_or(u32::MAX);
                self.series.push(Some(key.clone()));
                id
            }
        };
        self.ids.insert(key.clone(), id);
        self.post(METRIC_LABEL, key.metric_name(), id);
        for (name, value) in key.labels() {
            self.post(name, value, id);
        }
        true
    }

    fn post(&mut self, name: &str, value: &str, id: u32) {
        let values = match self.postings.get_mut(name) {
            Some(values) => values,
            None => self.postings.entry(name.into()).or_default(),
        };
        match values.get_mut(value) {
            Some(postings) => postings.insert(id),
            None => {
                values.insert(value.into(), Postings::One(id));
            }
        }
    }

    /// Drops `key` from the index; returns whether it was there.
    pub fn remove(&mut self, key: &SeriesKey) -> bool {
        let Some(id) = self.ids.remove(key) else {
            return false;
        };
        if let Some(slot) = self.series.get_mut(id as usize) {
            *slot = None;
        }
        self.free.push(id);
        self.unpost(METRIC_LABEL, key.metric_name(), id);
        for (name, value) in key.labels() {
            self.unpost(name, value, id);
        }
        true
    }

    fn unpost(&mut self, name: &str, value: &str, id: u32) {
        let Some(values) = self.postings.get_mut(name) else {
            return;
        };
        if values.get_mut(value).is_some_and(|p| p.remove(id)) {
            values.remove(value);
            if values.is_empty() {
                self.postings.remove(name);
            }
        }
    }

    /// The ids of the series passing every matcher, sorted by id.
    pub fn select_ids(&self, matchers: &[Matcher]) -> Vec<u32> {
        // Each matcher either names the ids it keeps (it refuses the empty value, so only
        // series holding a passing value qualify) or the ids it drops (it accepts "", so
        // every series qualifies but those holding a refused value).
        let mut keep: Vec<Vec<u32>> = Vec::new();
        let mut drop: Vec<u32> = Vec::new();
        for m in matchers {
            let values = self.postings.get(m.name.as_str());
            if m.matches("") {
                let Some(values) = values else { continue };
                match m.op {
                    MatchOp::NotEqual => {
                        if let Some(p) = values.get(m.value.as_str()) {
                            drop.extend_from_slice(p.as_slice());
                        }
                    }
                    _ => {
                        for (value, p) in values {
                            if !m.matches(value) {
                                drop.extend_from_slice(p.as_slice());
                            }
                        }
                    }
                }
            } else {
                let Some(values) = values else {
                    return Vec::new();
                };
                let ids = match m.op {
                    MatchOp::Equal => values
                        .get(m.value.as_str())
                        .map(|p| p.as_slice().to_vec())
                        .unwrap_or_default(),
                    _ => {
                        // A label's postings are disjoint: concatenate, then sort.
                        let mut ids: Vec<u32> = values
                            .iter()
                            .filter(|(value, _)| m.matches(value))
                            .flat_map(|(_, p)| p.as_slice().iter().copied())
                            .collect();
                        ids.sort_unstable();
                        ids
                    }
                };
                if ids.is_empty() {
                    return Vec::new();
                }
                keep.push(ids);
            }
        }
        keep.sort_by_key(Vec::len);
        let mut result = match keep.split_first() {
            Some((first, rest)) => rest
                .iter()
                .fold(first.clone(), |acc, ids| intersect(&acc, ids)),
            None => self.live_ids(),
        };
        if !drop.is_empty() {
            drop.sort_unstable();
            drop.dedup();
            result.retain(|id| drop.binary_search(id).is_err());
        }
        result
    }

    fn live_ids(&self) -> Vec<u32> {
        self.series
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(id, _)| id as u32)
            .collect()
    }

    /// The series passing every matcher, sorted by [`SeriesKey`]'s order.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<SeriesKey> {
        let mut keys: Vec<SeriesKey> = self
            .select_ids(matchers)
            .into_iter()
            .filter_map(|id| self.series.get(id as usize).and_then(Clone::clone))
            .collect();
        sort_keys(&mut keys);
        keys
    }

    /// Every label name in use, `__name__` included, sorted.
    pub fn label_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.postings.keys().map(|n| n.to_string()).collect();
        names.sort_unstable();
        names
    }

    /// Every value of label `name` in use, sorted (none for an unknown name).
    pub fn label_values(&self, name: &str) -> Vec<String> {
        self.postings
            .get(name)
            .map(|values| values.keys().map(|v| v.to_string()).collect())
            .unwrap_or_default()
    }

    /// Heap bytes the index holds beyond the label strings, estimated from allocated
    /// capacities: the id table, the key map (one control byte per bucket), the postings
    /// vectors, and per value a B-tree entry (key pointer and postings) with the nodes'
    /// spare slots. The keys themselves are shared with the series map (`Arc`), not
    /// counted.
    pub fn overhead_bytes(&self) -> usize {
        use std::mem::size_of;
        let slots = self.series.capacity() * size_of::<Option<SeriesKey>>();
        let ids = self.ids.capacity() * (size_of::<(SeriesKey, u32)>() + 1);
        let free = self.free.capacity() * size_of::<u32>();
        let entry = size_of::<Box<str>>() + size_of::<Postings>();
        let postings: usize = self
            .postings
            .values()
            .map(|values| {
                // B-tree nodes hold up to 11 entries and are at least half full; take the
                // worst case, 6 entries per 11-slot node.
                let nodes = values.len().div_ceil(6);
                nodes * (11 * entry + 16) + values.values().map(Postings::heap_bytes).sum::<usize>()
            })
            .sum();
        let names = self.postings.capacity() * (size_of::<Box<str>>() + 24 + 1);
        slots + ids + free + postings + names
    }

    /// Bytes of the distinct label names and values the index stores (once each).
    pub fn string_bytes(&self) -> usize {
        self.postings
            .iter()
            .map(|(name, values)| name.len() + values.keys().map(|v| v.len()).sum::<usize>())
            .sum()
    }
}

/// Sorts as [`SeriesKey`]'s `Ord` does (device, metric, labels), reading each key's device
/// and metric once rather than at every comparison.
fn sort_keys(keys: &mut [SeriesKey]) {
    let mut decorated: Vec<(&str, &str, usize)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.device_id(), k.metric_name(), i))
        .collect();
    decorated.sort_unstable_by(|a, b| {
        a.0.cmp(b.0)
            .then_with(|| a.1.cmp(b.1))
            .then_with(|| keys[a.2].labels().cmp(keys[b.2].labels()))
    });
    let order: Vec<SeriesKey> = decorated.iter().map(|&(_, _, i)| keys[i].clone()).collect();
    keys.clone_from_slice(&order);
}

/// The ids in both sorted lists.
fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(small.len());
    let mut rest = large;
    for &id in small {
        match rest.binary_search(&id) {
            Ok(at) => {
                out.push(id);
                rest = &rest[at + 1..];
            }
            Err(at) => rest = &rest[at..],
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(metric: &str, labels: &[(&str, &str)]) -> SeriesKey {
        SeriesKey::with_labels(metric, labels.iter().copied()).unwrap()
    }

    fn m(name: &str, op: &str, value: &str) -> Matcher {
        Matcher::new(name, MatchOp::parse(op).unwrap(), value).unwrap()
    }

    fn sample() -> (Index, Vec<SeriesKey>) {
        let keys = vec![
            key("t", &[("device_id", "a"), ("room", "lab")]),
            key("t", &[("device_id", "b"), ("room", "kitchen")]),
            key("t", &[("device_id", "c")]),
            key("h", &[("device_id", "a"), ("room", "lab")]),
        ];
        let mut index = Index::new();
        for k in &keys {
            assert!(index.add(k));
        }
        assert!(!index.add(&keys[0]));
        (index, keys)
    }

    fn texts(keys: &[SeriesKey]) -> Vec<&str> {
        keys.iter().map(SeriesKey::as_str).collect()
    }

    #[test]
    fn equal_matches_values_and_empty_matches_absent_labels() {
        let (index, _) = sample();
        assert_eq!(
            texts(&index.select(&[m("room", "=", "lab")])),
            [
                r#"h{device_id="a",room="lab"}"#,
                r#"t{device_id="a",room="lab"}"#
            ]
        );
        assert_eq!(
            texts(&index.select(&[m("room", "=", "")])),
            [r#"t{device_id="c"}"#]
        );
        assert_eq!(
            texts(&index.select(&[m("__name__", "=", "h")])),
            [r#"h{device_id="a",room="lab"}"#]
        );
        assert!(index.select(&[m("room", "=", "attic")]).is_empty());
        assert!(index.select(&[m("floor", "=", "1")]).is_empty());
        assert_eq!(index.select(&[m("floor", "=", "")]).len(), 4);
    }

    #[test]
    fn not_equal_keeps_series_without_the_label() {
        let (index, _) = sample();
        assert_eq!(
            texts(&index.select(&[m("room", "!=", "lab")])),
            [r#"t{device_id="b",room="kitchen"}"#, r#"t{device_id="c"}"#]
        );
        assert_eq!(index.select(&[m("room", "!=", "")]).len(), 3);
        assert_eq!(index.select(&[m("floor", "!=", "1")]).len(), 4);
    }

    #[test]
    fn regexes_are_anchored_and_dot_star_matches_all() {
        let (index, _) = sample();
        assert_eq!(index.select(&[m("room", "=~", ".*")]).len(), 4);
        assert_eq!(index.select(&[m("room", "=~", ".+")]).len(), 3);
        assert!(index.select(&[m("room", "=~", "la")]).is_empty());
        assert_eq!(
            texts(&index.select(&[m("room", "=~", "kit.*|nope")])),
            [r#"t{device_id="b",room="kitchen"}"#]
        );
        assert_eq!(
            texts(&index.select(&[m("room", "!~", "l.b")])),
            [r#"t{device_id="b",room="kitchen"}"#, r#"t{device_id="c"}"#]
        );
        assert!(index.select(&[m("room", "!~", ".*")]).is_empty());
    }

    #[test]
    fn matchers_intersect() {
        let (index, _) = sample();
        assert_eq!(
            texts(&index.select(&[m("__name__", "=", "t"), m("room", "!=", "kitchen")])),
            [r#"t{device_id="a",room="lab"}"#, r#"t{device_id="c"}"#]
        );
        assert_eq!(index.select(&[]).len(), 4);
    }

    #[test]
    fn bad_or_huge_regex_is_refused_naming_the_matcher() {
        let err = Matcher::new("room", MatchOp::Regex, "(").unwrap_err();
        assert!(err.to_string().contains("room=~"), "{err}");
        let big = "a{1000}{1000}";
        let err = Matcher::new("room", MatchOp::NotRegex, big).unwrap_err();
        assert!(err.to_string().contains("room!~"), "{err}");
        assert!(MatchOp::parse("==").is_err());
    }

    #[test]
    fn names_values_and_removal() {
        let (mut index, keys) = sample();
        assert_eq!(index.label_names(), ["__name__", "device_id", "room"]);
        assert_eq!(index.label_values("room"), ["kitchen", "lab"]);
        assert!(index.label_values("floor").is_empty());
        assert!(index.remove(&keys[1]));
        assert!(!index.remove(&keys[1]));
        assert_eq!(index.label_values("room"), ["lab"]);
        assert_eq!(index.label_values("device_id"), ["a", "c"]);
        assert_eq!(index.len(), 3);
        // The freed id is reused.
        let again = key("t", &[("device_id", "z"), ("floor", "2")]);
        assert!(index.add(&again));
        assert_eq!(index.series.len(), 4);
        assert_eq!(
            texts(&index.select(&[m("floor", "=", "2")])),
            [again.as_str()]
        );
        assert!(index.overhead_bytes() > 0);
        assert!(index.string_bytes() > 0);
    }

    fn arb_key() -> impl Strategy<Value = SeriesKey> {
        (
            0..3u8,
            prop::option::of(0..4u8),
            prop::option::of(0..3u8),
            prop::option::of(0..2u8),
        )
            .prop_map(|(metric, device, room, floor)| {
                let mut labels = Vec::new();
                if let Some(d) = device {
                    labels.push(("device_id".to_string(), format!("d{d}")));
                }
                if let Some(r) = room {
                    labels.push(("room".to_string(), format!("r{r}")));
                }
                if let Some(f) = floor {
                    labels.push(("floor".to_string(), format!("{f}")));
                }
                SeriesKey::with_labels(&format!("m{metric}"), labels).unwrap()
            })
    }

    fn arb_matcher() -> impl Strategy<Value = Matcher> {
        let names = prop::sample::select(vec!["__name__", "device_id", "room", "floor", "none"]);
        let ops = prop::sample::select(vec!["=", "!=", "=~", "!~"]);
        let values = prop::sample::select(vec![
            "", "m0", "m1", "d0", "d1", "d3", "r0", "r2", "0", "1", ".*", ".+", "d.", "r[01]",
            "m0|d1|r1", "1|",
        ]);
        (names, ops, values).prop_map(|(n, op, v)| m(n, op, v))
    }

    proptest! {
        /// `select` agrees with filtering every series by every matcher, before and after
        /// removals.
        #[test]
        fn select_matches_brute_force(
            keys in prop::collection::vec(arb_key(), 0..40),
            removed in prop::collection::vec(any::<prop::sample::Index>(), 0..15),
            selectors in prop::collection::vec(prop::collection::vec(arb_matcher(), 0..4), 1..8),
        ) {
            let mut index = Index::new();
            let mut live: Vec<SeriesKey> = Vec::new();
            for k in &keys {
                index.add(k);
                if !live.contains(k) {
                    live.push(k.clone());
                }
            }
            let check = |index: &Index, live: &[SeriesKey]| -> std::result::Result<(), TestCaseError> {
                for selector in &selectors {
                    let mut expected: Vec<SeriesKey> = live
                        .iter()
                        .filter(|k| selector.iter().all(|m| m.matches_series(k)))
                        .cloned()
                        .collect();
                    expected.sort();
                    prop_assert_eq!(index.select(selector), expected);
                }
                Ok(())
            };
            check(&index, &live)?;
            for r in &removed {
                if !keys.is_empty() {
                    let k = &keys[r.index(keys.len())];
                    index.remove(k);
                    live.retain(|l| l != k);
                }
            }
            check(&index, &live)?;
            for k in keys.iter().take(5) {
                index.add(k);
                if !live.contains(k) {
                    live.push(k.clone());
                }
            }
            check(&index, &live)?;
        }
    }
}
