//! The sharded series map (work in progress in the main tree).
