//! The Images API v1, as Glance 15 (Pike) served it beside v2 and the
//! python-glanceclient v1 client still speaks it: metadata in
//! `x-image-meta-*` headers, data in bodies, `is_public`, members with
//! `can_share`.
//!
//! There is one set of records: a v1 image is a v2 image (`is_public: true`
//! ↔ `public`; `is_public: false` ↔ `private`, or `shared` once it has
//! members; created without it, `shared`, as v2 creates), v1 properties are
//! v2 custom properties, v1 members are v2 members. The handlers sit in the
//! route tables of the components that own the same acts in v2 —
//! [`images`] in the images component's, [`members`] in the members
//! component's — and reuse their context, access checks, policy rules and
//! data path.
//!
//! - [`headers`]: `x-image-meta-*` ↔ image, percent-decoding;
//! - [`list`]: v1 list parameters → the shared `ListQuery`;
//! - [`view`]: the v1 JSON of an image.

pub(crate) mod headers;
pub(crate) mod images;
mod list;
pub(crate) mod members;
#[cfg(test)]
mod tests;
pub(crate) mod view;
