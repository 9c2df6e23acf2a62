//! The variables port: configuration values by name (Spin variables in a
//! component). What each variable means, and its default, is in
//! [`crate::settings`].

/// Where settings come from: a name → value lookup.
pub trait Variables {
    /// The value of variable `name`, if the host defines it.
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Variables for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}
