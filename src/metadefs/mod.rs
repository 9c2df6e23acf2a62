//! The metadata definitions catalog (Glance's metadefs): namespaces of
//! property definitions that say which metadata a resource type
//! (`OS::Glance::Image`, `OS::Nova::Flavor`, ...) may carry, grouped into
//! objects, with tags. Operators load Glance's catalog files
//! (`etc/metadefs/*.json`) by posting each as a namespace.
//!
//! This module holds the rules that are not HTTP: who sees a namespace
//! ([`access`]), how bodies are checked ([`schema`]) and how records look on
//! the wire ([`view`]). Rows live in [`crate::db::metadefs`].

pub mod access;
pub mod schema;
pub mod view;
