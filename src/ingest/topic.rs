//! MQTT topic layouts (`--topic`): which topics a node reads readings from, and what their
//! levels say about the reading.
//!
//! A layout is a topic template whose levels are literals or one of two placeholders,
//! each a whole level and at most once: `{metric}` and `{device_id}`. The default is the
//! original contract's `iot/sensors/{metric}`; `iot/{device_id}/{metric}` is another.
//!
//! 1. **Subscription**: each layout subscribes to its template with every placeholder
//!    replaced by `+` and `/#` appended (`iot/sensors/+/#`). The `#` level is there so that
//!    topics *deeper* than the layout (`iot/sensors/temperature/room1`) reach the node and
//!    are rejected and counted, instead of vanishing unseen at the broker.
//! 2. **Matching**: a topic matches a layout when it has exactly as many levels and every
//!    literal level is equal. The first matching layout, in flag order, wins. A topic that
//!    matches none is rejected (reason `topic`) and never stored: before layouts existed, a
//!    deeper topic was stored under its last level as the metric.
//! 3. **Values**: a placeholder's level fills in the metric or device id when the payload
//!    lacks it ([`crate::ingest::payload`] has the precedence rules). An empty level
//!    (`iot/sensors/`) gives no value, as if the placeholder were absent.

use std::fmt;

/// The layout used when `--topic` is not given: the original contract.
pub const DEFAULT_TOPIC: &str = "iot/sensors/{metric}";

/// The placeholder for the metric name.
pub const METRIC_PLACEHOLDER: &str = "{metric}";

/// The placeholder for the device id.
pub const DEVICE_PLACEHOLDER: &str = "{device_id}";

/// One level of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Level {
    Literal(String),
    Metric,
    DeviceId,
}

/// One parsed `--topic` template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicLayout {
    template: String,
    levels: Vec<Level>,
}

/// What a matching topic says about its reading. `None`: the layout has no such
/// placeholder, or its level is empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TopicValues<'t> {
    pub metric: Option<&'t str>,
    pub device_id: Option<&'t str>,
}

impl TopicLayout {
    /// Parses a template, refusing wildcards, unknown or repeated placeholders, and
    /// placeholders that are not a whole level.
    pub fn parse(template: &str) -> Result<TopicLayout, String> {
        if template.is_empty() {
            return Err("a topic template must not be empty".to_string());
        }
        if template.starts_with('$') {
            return Err(format!(
                "topic template {template:?} starts with '$', which brokers reserve"
            ));
        }
        let mut levels = Vec::new();
        for level in template.split('/') {
            let parsed = match level {
                METRIC_PLACEHOLDER => Level::Metric,
                DEVICE_PLACEHOLDER => Level::DeviceId,
                _ if level.contains(['+', '#']) => {
                    return Err(format!(
                        "topic template {template:?}: level {level:?} holds an MQTT wildcard; \
                         use {METRIC_PLACEHOLDER} or {DEVICE_PLACEHOLDER} instead"
                    ))
                }
                _ if level.contains(['{', '}']) => {
                    return Err(format!(
                        "topic template {template:?}: level {level:?} is not a placeholder; \
                         a placeholder ({METRIC_PLACEHOLDER} or {DEVICE_PLACEHOLDER}) must be \
                         a whole level"
                    ))
                }
                _ => Level::Literal(level.to_string()),
            };
            if !matches!(parsed, Level::Literal(_)) && levels.contains(&parsed) {
                return Err(format!(
                    "topic template {template:?}: {level} appears twice"
                ));
            }
            levels.push(parsed);
        }
        Ok(TopicLayout {
            template: template.to_string(),
            levels,
        })
    }

    /// The template as given.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The subscription filter: placeholders as `+`, then `/#` for deeper topics.
    pub fn filter(&self) -> String {
        let mut filter: Vec<&str> = self
            .levels
            .iter()
            .map(|level| match level {
                Level::Literal(text) => text.as_str(),
                Level::Metric | Level::DeviceId => "+",
            })
            .collect();
        filter.push("#");
        filter.join("/")
    }

    /// The values of `topic` if it matches this layout.
    pub fn capture<'t>(&self, topic: &'t str) -> Option<TopicValues<'t>> {
        let mut values = TopicValues::default();
        let mut parts = topic.split('/');
        for level in &self.levels {
            let part = parts.next()?;
            match level {
                Level::Literal(text) if text != part => return None,
                Level::Literal(_) => {}
                Level::Metric => values.metric = Some(part).filter(|p| !p.is_empty()),
                Level::DeviceId => values.device_id = Some(part).filter(|p| !p.is_empty()),
            }
        }
        parts.next().is_none().then_some(values)
    }
}

impl fmt::Display for TopicLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.template)
    }
}

/// Every layout of a node, in flag order (the first match wins). Never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicLayouts(Vec<TopicLayout>);

impl Default for TopicLayouts {
    fn default() -> TopicLayouts {
        TopicLayouts(vec![
            TopicLayout::parse(DEFAULT_TOPIC).expect("the default template is valid")
        ])
    }
}

impl TopicLayouts {
    /// Parses `--topic` values; none gives the default. A template given twice is refused
    /// as a likely typo elsewhere.
    pub fn parse<S: AsRef<str>>(templates: &[S]) -> Result<TopicLayouts, String> {
        if templates.is_empty() {
            return Ok(TopicLayouts::default());
        }
        let mut layouts: Vec<TopicLayout> = Vec::with_capacity(templates.len());
        for template in templates {
            let layout = TopicLayout::parse(template.as_ref().trim())?;
            if layouts.contains(&layout) {
                return Err(format!(
                    "topic template {:?} is given twice",
                    layout.template
                ));
            }
            layouts.push(layout);
        }
        Ok(TopicLayouts(layouts))
    }

    /// The layouts, in flag order.
    pub fn layouts(&self) -> &[TopicLayout] {
        &self.0
    }

    /// The subscription filters, one a layout.
    pub fn filters(&self) -> Vec<String> {
        self.0.iter().map(TopicLayout::filter).collect()
    }

    /// The values of `topic` from the first layout it matches, or `None`.
    pub fn capture<'t>(&self, topic: &'t str) -> Option<TopicValues<'t>> {
        self.0.iter().find_map(|layout| layout.capture(topic))
    }

    /// The templates joined for messages: `iot/sensors/{metric}, iot/{device_id}/{metric}`.
    pub fn describe(&self) -> String {
        let templates: Vec<&str> = self.0.iter().map(TopicLayout::template).collect();
        templates.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn layouts(templates: &[&str]) -> TopicLayouts {
        TopicLayouts::parse(templates).unwrap()
    }

    #[test]
    fn default_layout_takes_the_metric_from_the_third_level() {
        let l = TopicLayouts::default();
        assert_eq!(l.filters(), ["iot/sensors/+/#"]);
        assert_eq!(
            l.capture("iot/sensors/temperature"),
            Some(TopicValues {
                metric: Some("temperature"),
                device_id: None
            })
        );
        assert_eq!(layouts(&[]), l);
    }

    #[test]
    fn deeper_shallower_and_other_topics_match_no_layout() {
        let l = TopicLayouts::default();
        for topic in [
            "iot/sensors/temperature/room1",
            "iot/sensors",
            "iot/other/temperature",
            "",
            "iot/sensors/temperature/",
        ] {
            assert_eq!(l.capture(topic), None, "{topic:?}");
        }
    }

    #[test]
    fn an_empty_placeholder_level_gives_no_value() {
        let l = TopicLayouts::default();
        assert_eq!(l.capture("iot/sensors/"), Some(TopicValues::default()));
    }

    #[test]
    fn device_and_metric_placeholders_fill_both() {
        let l = layouts(&["iot/{device_id}/{metric}"]);
        assert_eq!(l.filters(), ["iot/+/+/#"]);
        assert_eq!(
            l.capture("iot/d1/humidity"),
            Some(TopicValues {
                metric: Some("humidity"),
                device_id: Some("d1")
            })
        );
    }

    #[test]
    fn the_first_matching_layout_wins() {
        let l = layouts(&["iot/sensors/{metric}", "iot/{device_id}/{metric}"]);
        assert_eq!(l.capture("iot/sensors/t").and_then(|v| v.device_id), None);
        assert_eq!(l.capture("iot/d1/t").and_then(|v| v.device_id), Some("d1"));
        assert_eq!(
            l.describe(),
            "iot/sensors/{metric}, iot/{device_id}/{metric}"
        );
    }

    #[test]
    fn a_layout_without_placeholders_matches_its_own_topic_only() {
        let l = layouts(&["plant/line1"]);
        assert_eq!(l.filters(), ["plant/line1/#"]);
        assert_eq!(l.capture("plant/line1"), Some(TopicValues::default()));
        assert_eq!(l.capture("plant/line1/x"), None);
    }

    #[test]
    fn bad_templates_are_refused_with_a_reason() {
        for (template, why) in [
            ("", "empty"),
            ("iot/+/{metric}", "wildcard"),
            ("iot/#", "wildcard"),
            ("iot/x{metric}", "whole level"),
            ("iot/{room}", "whole level"),
            ("iot/{metric}/{metric}", "twice"),
            ("$SYS/{metric}", "reserve"),
        ] {
            let e = TopicLayout::parse(template).unwrap_err();
            assert!(e.contains(why), "{template:?}: {e}");
        }
        let e = TopicLayouts::parse(&["a/{metric}", "a/{metric}"]).unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }

    proptest! {
        #[test]
        fn arbitrary_topics_never_panic(topic in "[a-z/{}+#]{0,30}", template in "[a-z/{}_]{0,30}") {
            let l = TopicLayouts::default();
            let _ = l.capture(&topic);
            if let Ok(layout) = TopicLayout::parse(&template) {
                let _ = layout.capture(&topic);
                let _ = layout.filter();
            }
        }
    }
}
