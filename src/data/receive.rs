//! Receiving image data into a store while hashing and inspecting it.

use std::io::Read;

use md5::{Digest, Md5};
use sha2::{Sha256, Sha384, Sha512};

use crate::data::blob::{BlobError, BlobWriter, Location};
use crate::data::inspect::{self, Format, FormatError, FormatInspector, Inspection, Reason};
use crate::image::{DataFacts, DiskFormat};

/// Bytes read from the request body per step.
const READ_SIZE: usize = 1 << 20;

/// The secure hash computed over image data (`hashing_algorithm`), shown as
/// `os_hash_algo` with its hex digest in `os_hash_value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashAlgo {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512 (Glance's default).
    #[default]
    Sha512,
}

impl HashAlgo {
    /// The algorithm called `name` (hashlib's names), if offered.
    pub fn parse(name: &str) -> Option<HashAlgo> {
        match name.trim().to_ascii_lowercase().as_str() {
            "sha256" => Some(HashAlgo::Sha256),
            "sha384" => Some(HashAlgo::Sha384),
            "sha512" => Some(HashAlgo::Sha512),
            _ => None,
        }
    }

    /// Its name, as `os_hash_algo` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha384 => "sha384",
            HashAlgo::Sha512 => "sha512",
        }
    }

    /// A running hash of this algorithm.
    fn hasher(self) -> Hasher {
        match self {
            HashAlgo::Sha256 => Hasher::Sha256(Sha256::new()),
            HashAlgo::Sha384 => Hasher::Sha384(Sha384::new()),
            HashAlgo::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }
}

/// A running secure hash.
enum Hasher {
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    fn hex(self) -> String {
        match self {
            Hasher::Sha256(h) => hex(&h.finalize()),
            Hasher::Sha384(h) => hex(&h.finalize()),
            Hasher::Sha512(h) => hex(&h.finalize()),
        }
    }
}

/// What format inspection learnt while staging, kept until the import
/// judges it against the (by then final) disk format.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InspectionRecord {
    /// Detected format name.
    pub format: String,
    /// Virtual size, if the format records one.
    pub virtual_size: Option<u64>,
    /// Bytes inspected.
    pub actual_size: u64,
    /// Failed safety checks, as their texts (read back with [`Reason::parse`]:
    /// a text it does not know still counts as a failed check).
    pub unsafe_reasons: Vec<String>,
}

impl From<&Inspection> for InspectionRecord {
    fn from(i: &Inspection) -> Self {
        InspectionRecord {
            format: i.format.to_string(),
            virtual_size: i.virtual_size,
            actual_size: i.actual_size,
            unsafe_reasons: i.unsafe_reasons.iter().map(Reason::to_string).collect(),
        }
    }
}

impl InspectionRecord {
    /// Glance's verdict for `declared` on the recorded inspection.
    pub fn verdict(&self, declared: &str) -> Result<Option<u64>, FormatError> {
        let inspection = Inspection {
            format: Format::parse(&self.format).unwrap_or(Format::Raw),
            virtual_size: self.virtual_size,
            actual_size: self.actual_size,
            unsafe_reasons: self
                .unsafe_reasons
                .iter()
                .map(|r| Reason::parse(r))
                .collect(),
        };
        inspect::verdict(declared, &inspection)
    }
}

/// What an upload produced.
#[derive(Debug)]
pub struct Received {
    /// Where the data now lives.
    pub location: Location,
    /// md5 hex digest.
    pub checksum: String,
    /// Hex digest of [`Received::os_hash_algo`].
    pub os_hash_value: String,
    /// The secure hash computed.
    pub os_hash_algo: HashAlgo,
    /// Virtual size, when the format tells it (known only when the disk
    /// format was given).
    pub virtual_size: Option<u64>,
    /// What the inspector saw, for a later verdict when no disk format was
    /// given yet (staging).
    pub inspection: Option<Inspection>,
}

impl Received {
    /// What the data is, for the image record.
    pub fn facts(&self) -> DataFacts {
        DataFacts {
            size: self.location.size,
            checksum: self.checksum.clone(),
            os_hash_value: self.os_hash_value.clone(),
            os_hash_algo: self.os_hash_algo.as_str(),
            virtual_size: self.virtual_size,
        }
    }
}

/// Why an upload failed. Nothing of it is kept in the store.
#[derive(Debug)]
pub enum ReceiveError {
    /// More data than allowed (size cap or quota): 413.
    TooLarge(String),
    /// The data is not what `disk_format` says, or unsafe: 415.
    Format(FormatError),
    /// The data's size differs from what the client announced: 400.
    SizeMismatch(String),
    /// The request body broke off (client gone, body shorter than announced).
    Body(std::io::Error),
    /// The store failed.
    Store(BlobError),
}

/// Rules for one upload.
pub struct ReceiveRules<'a> {
    /// The image's declared disk format; None while it may still change
    /// (staging): the data is inspected but judged later.
    pub disk_format: Option<DiskFormat>,
    /// Inspect the data (Glance does for container_format `bare`).
    pub inspect: bool,
    /// Most bytes accepted, and the message when exceeded.
    pub max_bytes: u64,
    /// What to say when `max_bytes` is exceeded.
    pub too_large: &'a str,
    /// Size the client announced (`x-openstack-image-size`), if any.
    pub expected_size: Option<u64>,
    /// The secure hash to compute (`hashing_algorithm`).
    pub hash: HashAlgo,
}

/// Streams `body` into `writer`, computing md5 and sha512 and inspecting the
/// format on the way. On any failure the partial data is removed from the store.
pub fn receive(
    body: &mut dyn Read,
    mut writer: Box<dyn BlobWriter + '_>,
    rules: &ReceiveRules,
) -> Result<Received, ReceiveError> {
    let mut md5 = Md5::new();
    let mut sha = rules.hash.hasher();
    let mut inspector = rules.inspect.then(FormatInspector::new);
    let mut buf = vec![0u8; READ_SIZE];
    let mut total: u64 = 0;
    let fail = |writer: Box<dyn BlobWriter + '_>, e: ReceiveError| {
        writer.abort();
        Err(e)
    };
    loop {
        let n = match read_some(body, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return fail(writer, ReceiveError::Body(e)),
        };
        let data = &buf[..n];
        total += n as u64;
        if total > rules.max_bytes {
            return fail(writer, ReceiveError::TooLarge(rules.too_large.to_string()));
        }
        md5.update(data);
        sha.update(data);
        if let Some(ins) = inspector.as_mut() {
            ins.feed(data);
            if let Some(refusal) = rules
                .disk_format
                .and_then(|f| ins.early_refusal(f.as_str()))
            {
                return fail(writer, ReceiveError::Format(refusal));
            }
        }
        if let Err(e) = writer.write(data) {
            return fail(writer, ReceiveError::Store(e));
        }
    }
    if let Some(expected) = rules.expected_size {
        if expected != total {
            return fail(
                writer,
                ReceiveError::SizeMismatch(format!(
                    "Image size {total} does not match the size {expected} given in the request"
                )),
            );
        }
    }
    let inspection = inspector.map(FormatInspector::finish);
    let virtual_size = match (&inspection, rules.disk_format) {
        (Some(ins), Some(declared)) => match inspect::verdict(declared.as_str(), ins) {
            Ok(v) => v,
            Err(e) => return fail(writer, ReceiveError::Format(e)),
        },
        _ => None,
    };
    let location = writer.finish().map_err(ReceiveError::Store)?;
    Ok(Received {
        location,
        checksum: hex(&md5.finalize()),
        os_hash_value: sha.hex(),
        os_hash_algo: rules.hash,
        virtual_size,
        inspection,
    })
}

/// Fills `buf` as far as the body allows (fewer, larger store writes).
pub(crate) fn read_some(body: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match body.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::blob::kv::KvStore;
    use crate::data::blob::BlobStore;
    use crate::ports::memory::MemoryKv;
    use std::rc::Rc;

    fn rules(max: u64) -> ReceiveRules<'static> {
        ReceiveRules {
            disk_format: Some(DiskFormat::Raw),
            inspect: true,
            max_bytes: max,
            too_large: "too large",
            expected_size: None,
            hash: HashAlgo::Sha512,
        }
    }

    #[test]
    fn receives_and_hashes() {
        let kv = Rc::new(MemoryKv::default());
        let store = KvStore::new("image_data", kv.clone(), 1000);
        let data = vec![7u8; 2500];
        let got = receive(
            &mut &data[..],
            store.writer(&store.plan("i").unwrap()).unwrap(),
            &rules(1 << 20),
        )
        .unwrap();
        assert_eq!(got.location.size, 2500);
        assert_eq!(got.checksum, hex(&Md5::digest(&data)));
        assert_eq!(got.os_hash_value, hex(&Sha512::digest(&data)));
        assert_eq!(got.virtual_size, Some(2500));
        assert_eq!(kv.map.borrow().len(), 3);
    }

    #[test]
    fn the_configured_hash_is_computed_and_named() {
        let kv = Rc::new(MemoryKv::default());
        let store = KvStore::new("image_data", kv, 1000);
        let data = vec![9u8; 1500];
        for (algo, want) in [
            (HashAlgo::Sha256, hex(&Sha256::digest(&data))),
            (HashAlgo::Sha384, hex(&Sha384::digest(&data))),
            (HashAlgo::Sha512, hex(&Sha512::digest(&data))),
        ] {
            let mut r = rules(1 << 20);
            r.hash = algo;
            let got = receive(
                &mut &data[..],
                store.writer(&store.plan("h").unwrap()).unwrap(),
                &r,
            )
            .unwrap();
            assert_eq!(got.os_hash_value, want, "{algo:?}");
            assert_eq!(got.facts().os_hash_algo, algo.as_str());
        }
        assert_eq!(HashAlgo::parse("SHA384"), Some(HashAlgo::Sha384));
        assert_eq!(HashAlgo::parse("md5"), None);
    }

    #[test]
    fn failures_leave_nothing_behind() {
        let kv = Rc::new(MemoryKv::default());
        let store = KvStore::new("image_data", kv.clone(), 1000);
        let data = vec![1u8; 5000];
        let err = receive(
            &mut &data[..],
            store.writer(&store.plan("i").unwrap()).unwrap(),
            &rules(4000),
        )
        .unwrap_err();
        assert!(matches!(err, ReceiveError::TooLarge(_)));
        assert!(kv.map.borrow().is_empty());

        *kv.fail_sets_after.borrow_mut() = Some(2);
        let big = vec![1u8; 5000];
        let err = receive(
            &mut &big[..],
            store.writer(&store.plan("i").unwrap()).unwrap(),
            &rules(1 << 20),
        )
        .unwrap_err();
        assert!(matches!(err, ReceiveError::Store(_)));
        assert!(kv.map.borrow().is_empty());
        *kv.fail_sets_after.borrow_mut() = None;

        struct Broken(usize);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "gone",
                    ));
                }
                let n = buf.len().min(self.0).min(700);
                self.0 -= n;
                Ok(n)
            }
        }
        let err = receive(
            &mut Broken(3000),
            store.writer(&store.plan("i").unwrap()).unwrap(),
            &rules(1 << 20),
        )
        .unwrap_err();
        assert!(matches!(err, ReceiveError::Body(_)));
        assert!(kv.map.borrow().is_empty());

        let mut r = rules(1 << 20);
        r.expected_size = Some(10);
        let err = receive(
            &mut &data[..],
            store.writer(&store.plan("i").unwrap()).unwrap(),
            &r,
        )
        .unwrap_err();
        assert!(matches!(err, ReceiveError::SizeMismatch(_)));
        assert!(kv.map.borrow().is_empty());
    }

    #[test]
    fn inspection_records_keep_formats_and_reasons_as_text() {
        let inspection = Inspection {
            format: Format::Qcow2,
            virtual_size: Some(1 << 20),
            actual_size: 4096,
            unsafe_reasons: vec![Reason::Qcow2BackingFile],
        };
        let record = InspectionRecord::from(&inspection);
        assert_eq!(
            serde_json::to_value(&record).unwrap(),
            serde_json::json!({
                "format": "qcow2",
                "virtual_size": 1 << 20,
                "actual_size": 4096,
                "unsafe_reasons": ["qcow2 backing file"],
            })
        );
        assert_eq!(
            record.verdict("qcow2"),
            inspect::verdict("qcow2", &inspection)
        );
        // A stored reason this version does not give still fails the image.
        let stored = InspectionRecord {
            unsafe_reasons: vec!["some future check".into()],
            ..record
        };
        let err = stored.verdict("qcow2").unwrap_err();
        assert_eq!(err.to_string(), "Image failed safety checks");
        let clean = InspectionRecord {
            unsafe_reasons: Vec::new(),
            ..stored
        };
        assert_eq!(clean.verdict("qcow2"), Ok(Some(1 << 20)));
    }

    #[test]
    fn mismatched_format_is_refused() {
        let kv = Rc::new(MemoryKv::default());
        let store = KvStore::new("image_data", kv.clone(), 1000);
        let data = vec![3u8; 100_000];
        let mut r = rules(1 << 20);
        r.disk_format = Some(DiskFormat::Qcow2);
        let err = receive(
            &mut &data[..],
            store.writer(&store.plan("i").unwrap()).unwrap(),
            &r,
        )
        .unwrap_err();
        match err {
            ReceiveError::Format(f) => {
                assert_eq!(
                    f.to_string(),
                    "Image disk_format qcow2 does not match stream data raw"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(kv.map.borrow().is_empty());
    }
}
