//! What changes the decisions while the app runs: the runtime API ([`AllowHandle`]), and
//! the record every change leaves (audit lines).

pub(crate) mod audit;
pub(crate) mod auto_ban;
pub(crate) mod error;
pub(crate) mod explain;
pub(crate) mod fleet;
pub(crate) mod handle;
pub(crate) mod hits;
pub(crate) mod sources;
