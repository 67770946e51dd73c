//! The storage engine (work in progress in the main tree).
pub struct Engine;
pub struct EngineConfig;
