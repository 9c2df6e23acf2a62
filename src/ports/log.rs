//! The log port: one line per request and per internal error. On Spin the
//! adapter writes to the component's stderr, which Spin (and glance-host)
//! keep in their logs; tests read the lines back from a fake.

/// How much a line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something that happened as it should (a request served).
    Info,
    /// Something went wrong that an operator may need to act on.
    Error,
}

impl Level {
    /// The level as written at the start of a line.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Error => "ERROR",
        }
    }
}

/// Where log lines go.
pub trait Log {
    /// Writes one line (no trailing newline).
    fn line(&self, level: Level, text: &str);
}
