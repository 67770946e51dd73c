//! MQTT receive loop (CONTRACT, implemented by the mqtt work; signature fixed).

use crate::node::Node;
use crossbeam_channel::Receiver;

/// The MQTT thread's body: runs until `shutdown_rx` disconnects.
pub fn mqtt_receive(_node: &Node, shutdown_rx: &Receiver<()>) {
    let _ = shutdown_rx.recv();
}
