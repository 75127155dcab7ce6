//! What changes the decisions while the app runs: the runtime API ([`AllowHandle`]), and
//! the record every change leaves (audit lines).

pub(crate) mod handle;
