//! SQL persistence over the [`crate::ports::Database`] port: schema
//! migrations, image records, memberships and tasks.

pub mod images;
pub mod members;
pub mod migrations;
pub mod tasks;
