//! The key-value port (Spin's `fermyon:spin/key-value`).

use super::StoreError;

/// A key-value store (Spin's `fermyon:spin/key-value`): values up to 1 MB are
/// guaranteed by every backend.
pub trait KeyValue {
    /// The value of `key`, if set.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Sets `key` to `value`.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Removes `key` (no error if absent).
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Whether `key` is set.
    fn exists(&self, key: &str) -> Result<bool, StoreError>;
}

/// Opens key-value stores by label (the labels a component is granted).
pub trait KeyValueOpener {
    /// Opens the store `label`.
    fn open(&self, label: &str) -> Result<std::rc::Rc<dyn KeyValue>, StoreError>;
}
