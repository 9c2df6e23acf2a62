//! Images made by `qemu-img` (which must be installed), in scratch directories.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scratch directory, removed when dropped.
pub(super) struct Scratch(PathBuf);

impl Scratch {
    /// A new, empty directory; `tag` shows in its name.
    pub(super) fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "glance-format-inspector-{}-{tag}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    /// The path of `name` in the directory.
    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn qemu_img(dir: &Scratch, args: &[&str]) {
    let out = Command::new("qemu-img")
        .current_dir(&dir.0)
        .args(args)
        .output()
        .expect("qemu-img must be installed to run these tests");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// qemu-img's format name and virtual size for `path`.
pub(super) fn qemu_info(path: &Path) -> (String, u64) {
    let out = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(path)
        .output()
        .expect("qemu-img info");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("qemu-img json");
    (
        info["format"].as_str().expect("format").to_string(),
        info["virtual-size"].as_u64().expect("virtual-size"),
    )
}

/// Creates an image with `qemu-img create <args>` and returns its bytes.
pub(super) fn make_image(dir: &Scratch, name: &str, args: &[&str]) -> Vec<u8> {
    let mut all = vec!["create", "-q"];
    all.extend_from_slice(args);
    qemu_img(dir, &all);
    std::fs::read(dir.path(name)).expect("read image")
}

/// A 16 MiB qcow2 with a backing file (`top.qcow2` over `base.qcow2`): the
/// classic unsafe image.
pub(super) fn qcow2_with_backing_file(dir: &Scratch) -> Vec<u8> {
    make_image(dir, "base.qcow2", &["-f", "qcow2", "base.qcow2", "16M"]);
    make_image(
        dir,
        "top.qcow2",
        &[
            "-f",
            "qcow2",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            "top.qcow2",
        ],
    )
}
