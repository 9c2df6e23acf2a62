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
    /// How many values a writer may gather for one [`KeyValue::set_many`];
    /// 1 (the default) means one `set` per value.
    fn batch_hint(&self) -> usize {
        1
    }
    /// Sets several keys (in one transaction where the backend offers it).
    fn set_many(&self, items: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        for (k, v) in items {
            self.set(k, v)?;
        }
        Ok(())
    }
}

/// Opens key-value stores by label (the labels a component is granted).
pub trait KeyValueOpener {
    /// Opens the store `label`.
    fn open(&self, label: &str) -> Result<std::rc::Rc<dyn KeyValue>, StoreError>;
}
