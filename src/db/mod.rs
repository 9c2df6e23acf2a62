//! SQL persistence over the [`crate::ports::Database`] port: schema
//! migrations, image records, memberships, tasks, and the crash-safety
//! records (leases on work in progress, garbage to reclaim).

pub mod cache;
pub mod garbage;
mod heal;
mod image_list;
pub mod images;
pub mod leases;
pub mod members;
pub mod metadefs;
pub mod migrations;
pub mod tasks;
