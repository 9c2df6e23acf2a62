//! Image bytes: receiving uploads into blob stores while hashing and
//! inspecting them, the configured stores, and interoperable import.

pub mod blob;
pub(crate) mod cache;
pub mod import;
pub mod inspect;
pub mod lease;
pub mod range;
pub mod receive;
pub mod reclaim;
pub mod remote;
pub mod stores;
pub(crate) mod upstream;
