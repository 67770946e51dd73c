//! Ingestion: turning bytes that arrive from outside into validated [`Point`]s.
//!
//! Three wire formats reach MiniTrue:
//!
//! - **MQTT payloads** ([`payload`]): JSON messages on the topics of the `--topic` layouts
//!   ([`topic`]; by default `iot/sensors/{metric_name}`), e.g.
//!   `{"device_id":"sensor_1","metric_name":"temperature","timestamp":1710000000,"value":24.2}`,
//!   an array of such objects, or one object with a field per metric.
//!   A bad message is dropped and counted by its [`RejectReason`], because MQTT has no way to
//!   tell the publisher what was wrong.
//! - **InfluxDB line protocol** ([`line_protocol`]), as Telegraf and Influx client libraries
//!   send it over HTTP. As InfluxDB does, the good lines of a request are stored and each
//!   line that was not (or only in part) is reported by number and column
//!   ([`line_protocol::parse_body`]), so the client learns exactly what was dropped.
//! - **Prometheus remote write 1.0** ([`remote_write`]): snappy-compressed protobuf from
//!   Prometheus, Grafana Alloy or vmagent. The good series are stored and the refused ones
//!   named, as for line protocol; stale markers and other non-finite samples are skipped.
//!
//! The parsers are pure functions of their input (and of "now", for points that carry no
//! timestamp): they open no sockets and spawn no threads, so they are tested without either.
//! Whatever they return has passed [`SeriesKey::new`]'s checks and has a finite value, so the
//! layers after them (routing, WAL, series map) never see malformed points.
//!
//! [`Point`]: crate::storage::Point
//! [`SeriesKey::new`]: crate::storage::SeriesKey::new
//! [`RejectReason`]: payload::RejectReason

pub mod line_protocol;
pub mod mqtt;
pub mod payload;
pub mod remote_write;
pub mod route;
pub mod stats;
pub mod timestamp;
pub mod topic;

pub use line_protocol::{
    parse_body, parse_line_protocol, parse_line_protocol_within, ParsedBody, Precision,
};
pub use payload::{
    parse_mqtt_message, parse_mqtt_payload, parse_mqtt_payload_at, PayloadError, RejectReason,
    MAX_PAYLOAD_BYTES, MAX_READINGS_PER_MESSAGE,
};
pub use topic::{TopicLayout, TopicLayouts};
