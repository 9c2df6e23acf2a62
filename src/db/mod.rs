//! SQL persistence over the [`crate::ports::Database`] port: schema
//! migrations, image records, memberships and tasks.

mod image_list;
pub mod images;
pub mod members;
pub mod migrations;
pub mod tasks;
