//! Blob storage for image data: where the bytes of an image live.
//!
//! A [`BlobStore`] writes an image's data as it streams in ([`BlobWriter`]),
//! reads it back as a stream of chunks (optionally a byte range), and deletes
//! it. Each stored copy is described by a [`Location`] kept in the image record,
//! so reads never have to search the store.

pub mod http;
pub mod kv;
pub mod s3;
pub mod sigv4;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::wire_enum::wire_enum;

/// A stream of data chunks, in order.
pub type ChunkStream = Box<dyn Iterator<Item = std::io::Result<Vec<u8>>>>;

wire_enum! {
    /// The kinds of store, by the id Glance's APIs show (`stores`, `/v2/info/stores`).
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum StoreId {
        /// Chunks in a Spin key-value store.
        Kv = "kv",
        /// Objects in an S3-compatible object store.
        S3 = "s3",
        /// External http(s) locations, read-only.
        Http = "http",
    }
}

impl StoreId {
    /// What `/v2/info/stores` says about it.
    pub fn description(self) -> &'static str {
        match self {
            StoreId::Kv => "Image data in chunks in a Spin key-value store",
            StoreId::S3 => "S3-compatible object store",
            StoreId::Http => "External http(s) locations, read-only",
        }
    }

    /// Whether the store only serves data that lives elsewhere.
    pub fn read_only(self) -> bool {
        self == StoreId::Http
    }
}

/// Where one copy of an image's data lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// The store holding it.
    pub store: StoreId,
    /// Store-specific address (`kv://image_data/<image>/<upload>`, `s3://bucket/key`, `https://...`).
    pub url: String,
    /// Data size in bytes.
    pub size: u64,
    /// Chunk size the data was written with (chunked stores only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub chunk_size: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A failure of a store. The API answers these as 5xx (store trouble) unless
/// the caller maps them otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobError {
    /// The store refused or failed an operation.
    Store(String),
    /// The data is not where its location says.
    Missing(String),
    /// The store cannot do this (e.g. write to a read-only store).
    Unsupported(String),
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobError::Store(m) => write!(f, "store error: {m}"),
            BlobError::Missing(m) => write!(f, "image data missing: {m}"),
            BlobError::Unsupported(m) => write!(f, "unsupported: {m}"),
        }
    }
}

impl std::error::Error for BlobError {}

impl From<crate::ports::StoreError> for BlobError {
    fn from(e: crate::ports::StoreError) -> Self {
        BlobError::Store(e.0)
    }
}

/// An inclusive byte range `first..=last` within the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte offset.
    pub first: u64,
    /// Last byte offset (inclusive).
    pub last: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }
}

/// Writes one image's data. Dropping a writer without [`BlobWriter::finish`]
/// must not leave a usable object behind; call [`BlobWriter::abort`] to also
/// remove what was written so far.
pub trait BlobWriter {
    /// Appends data.
    fn write(&mut self, data: &[u8]) -> Result<(), BlobError>;
    /// Completes the object and returns its location.
    fn finish(self: Box<Self>) -> Result<Location, BlobError>;
    /// Removes everything written so far.
    fn abort(self: Box<Self>);
}

/// A place image data can be stored.
///
/// Writing is two steps so that the address of new data can be recorded
/// before its first byte is written: [`BlobStore::plan`] names a fresh
/// object, [`BlobStore::writer`] writes it.
pub trait BlobStore {
    /// Where a new object of `image_id` will live (fresh on every call; size 0).
    fn plan(&self, image_id: &str) -> Result<Location, BlobError>;
    /// Starts writing the object planned at `at`.
    fn writer(&self, at: &Location) -> Result<Box<dyn BlobWriter>, BlobError>;
    /// Streams the data at `location`, or a range of it.
    fn read(&self, location: &Location, range: Option<ByteRange>)
        -> Result<ChunkStream, BlobError>;
    /// Removes the data at `location` (absent data is not an error).
    fn delete(&self, location: &Location) -> Result<(), BlobError>;
    /// Removes whatever an abandoned write to `at` left, knowing it wrote at
    /// most `reserved` bytes (absent data is not an error).
    fn reclaim(&self, at: &Location, reserved: u64) -> Result<(), BlobError> {
        self.delete(&Location {
            size: reserved,
            ..at.clone()
        })
    }
}
