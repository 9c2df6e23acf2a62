//! Outbound Redis: `fermyon:spin/redis@2.0.0`, speaking RESP2 over TCP.
//!
//! Mirrors spinframework/spin crates/factor-outbound-redis/src/host.rs and
//! allowed_hosts.rs:
//! - `open(address)` needs an `allowed_outbound_hosts` entry for the address (checked as
//!   Spin's `check_url(address, "redis")`: a missing port is 6379); a disallowed or
//!   unparsable address is `invalid-address`, a failed connection `other(message)`;
//! - the address is a `redis://[user[:password]@]host[:port][/db]` URL (as the `redis`
//!   crate reads it): `AUTH` is sent when it has a password, `SELECT` when `db` is not 0;
//! - `publish`, `get`, `set`, `incr` (`INCRBY key 1`), `del`, `sadd`, `smembers`, `srem`
//!   and `execute` send one command each and wait for its reply; a Redis error reply is
//!   `other(message)` (`type-error` for a `WRONGTYPE` reply to `sadd`); `execute` answers
//!   the reply flattened (arrays into their elements, `+OK` as `status("OK")`);
//! - results larger than 128 MiB are `other("query result exceeds limit of 134217728
//!   bytes")`; at most 1024 connections are open per instance (`too-many-connections`).
//!
//! Not offered: `rediss://` (TLS) and Unix-socket addresses (`other(..)`), RESP3.

use std::sync::Arc;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;
use wasmtime::component::{Resource, ResourceTable};

use crate::bindings::redis::{self, Error, RedisParameter, RedisResult};
use crate::outbound::AllowedHosts;
use crate::state::MAX_HOST_BUFFERED_BYTES;

/// Most connections one instance may hold open, as in Spin.
const MAX_CONNECTIONS: usize = 1024;

/// The `connection` resource: one TCP connection to a Redis server.
pub struct RedisConnection {
    stream: BufStream<TcpStream>,
}

/// One instance's outbound Redis: its policy and open connections.
pub struct RedisInstance {
    allowed: Arc<AllowedHosts>,
    table: ResourceTable,
    open: usize,
}

impl RedisInstance {
    /// A fresh per-request state under `allowed`.
    pub fn new(allowed: Arc<AllowedHosts>) -> Self {
        Self {
            allowed,
            table: ResourceTable::new(),
            open: 0,
        }
    }

    fn conn(&mut self, r: &Resource<RedisConnection>) -> Result<&mut RedisConnection, Error> {
        self.table
            .get_mut(r)
            .map_err(|_| Error::Other("could not find connection for resource".into()))
    }

    /// Sends one command on `r` and reads its reply; a Redis error reply is `Err`.
    async fn call(
        &mut self,
        r: &Resource<RedisConnection>,
        args: Vec<Vec<u8>>,
    ) -> Result<Reply, Error> {
        let conn = self.conn(r)?;
        match conn.command(&args).await {
            Ok(Reply::Error(e)) => Err(Error::Other(e)),
            Ok(reply) => Ok(reply),
            Err(e) => Err(Error::Other(e.to_string())),
        }
    }
}

/// Where to connect, from a `redis://` URL.
#[derive(Debug, PartialEq, Eq)]
struct Address {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    db: i64,
}

fn parse_address(address: &str) -> Result<Address, Error> {
    let url = url::Url::parse(address).map_err(|_| Error::InvalidAddress)?;
    match url.scheme() {
        "redis" => {}
        "rediss" | "redis+unix" | "unix" => {
            return Err(Error::Other(format!(
                "glance-host does not support {}:// Redis addresses",
                url.scheme()
            )))
        }
        _ => return Err(Error::InvalidAddress),
    }
    let host = match url.host() {
        Some(url::Host::Ipv6(a)) => a.to_string(),
        Some(h) => h.to_string(),
        None => return Err(Error::InvalidAddress),
    };
    let decode = |s: &str| percent_decode(s).ok_or(Error::InvalidAddress);
    let username = match url.username() {
        "" => None,
        u => Some(decode(u)?),
    };
    let password = url.password().map(decode).transpose()?;
    let db = match url.path().trim_matches('/') {
        "" => 0,
        p => p.parse().map_err(|_| Error::InvalidAddress)?,
    };
    Ok(Address {
        host,
        port: url.port().unwrap_or(6379),
        username,
        password,
        db,
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Nil,
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
}

impl RedisConnection {
    async fn connect(a: &Address) -> std::io::Result<Self> {
        let tcp = TcpStream::connect((a.host.as_str(), a.port)).await?;
        let mut conn = Self {
            stream: BufStream::new(tcp),
        };
        let refused = |r: Reply| match r {
            Reply::Error(e) => Err(std::io::Error::other(e)),
            _ => Ok(()),
        };
        if let Some(password) = &a.password {
            let mut args = vec![b"AUTH".to_vec()];
            if let Some(user) = &a.username {
                args.push(user.as_bytes().to_vec());
            }
            args.push(password.as_bytes().to_vec());
            refused(conn.command(&args).await?)?;
        }
        if a.db != 0 {
            refused(
                conn.command(&[b"SELECT".to_vec(), a.db.to_string().into_bytes()])
                    .await?,
            )?;
        }
        Ok(conn)
    }

    async fn command(&mut self, args: &[Vec<u8>]) -> std::io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&out).await?;
        self.stream.flush().await?;
        let mut budget = MAX_HOST_BUFFERED_BYTES;
        read_reply(&mut self.stream, &mut budget).await
    }
}

fn bad_reply(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("invalid Redis reply: {what}"),
    )
}

async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<String> {
    let mut line = Vec::new();
    let n = r.read_until(b'\n', &mut line).await?;
    if n == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the Redis server closed the connection",
        ));
    }
    if !line.ends_with(b"\r\n") {
        return Err(bad_reply("line without CRLF"));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| bad_reply("line is not UTF-8"))
}

/// Reads one reply; `budget` is what the reply may still take of the host's buffer limit.
fn read_reply<'a, R: AsyncBufRead + Unpin + Send>(
    r: &'a mut R,
    budget: &'a mut usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<Reply>> + Send + 'a>> {
    Box::pin(async move {
        let line = read_line(r).await?;
        let (kind, rest) = line.split_at(line.len().min(1));
        let int = |s: &str| s.parse::<i64>().map_err(|_| bad_reply("bad integer"));
        let mut spend = |n: usize| {
            *budget = budget.checked_sub(n).ok_or_else(|| {
                std::io::Error::other(format!(
                    "query result exceeds limit of {MAX_HOST_BUFFERED_BYTES} bytes"
                ))
            })?;
            Ok::<_, std::io::Error>(())
        };
        match kind {
            "+" => {
                spend(rest.len())?;
                Ok(Reply::Status(rest.to_string()))
            }
            "-" => Ok(Reply::Error(rest.to_string())),
            ":" => Ok(Reply::Int(int(rest)?)),
            "$" => {
                let n = int(rest)?;
                if n < 0 {
                    return Ok(Reply::Nil);
                }
                let n = usize::try_from(n).map_err(|_| bad_reply("bad length"))?;
                spend(n)?;
                let mut buf = vec![0u8; n + 2];
                r.read_exact(&mut buf).await?;
                if !buf.ends_with(b"\r\n") {
                    return Err(bad_reply("bulk string without CRLF"));
                }
                buf.truncate(n);
                Ok(Reply::Bulk(buf))
            }
            "*" => {
                let n = int(rest)?;
                if n < 0 {
                    return Ok(Reply::Nil);
                }
                let n = usize::try_from(n).map_err(|_| bad_reply("bad length"))?;
                spend(n.saturating_mul(std::mem::size_of::<RedisResult>()))?;
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    items.push(read_reply(r, budget).await?);
                }
                Ok(Reply::Array(items))
            }
            _ => Err(bad_reply("unknown type")),
        }
    })
}

fn type_error(what: &str) -> Error {
    Error::Other(format!("Response was of incompatible type - {what}"))
}

impl Reply {
    fn into_bytes_opt(self) -> Result<Option<Vec<u8>>, Error> {
        match self {
            Reply::Nil => Ok(None),
            Reply::Bulk(b) => Ok(Some(b)),
            Reply::Status(s) => Ok(Some(s.into_bytes())),
            other => Err(type_error(&format!("not bytes: {other:?}"))),
        }
    }

    fn into_int(self) -> Result<i64, Error> {
        match self {
            Reply::Int(i) => Ok(i),
            Reply::Bulk(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| type_error("not an integer")),
            other => Err(type_error(&format!("not an integer: {other:?}"))),
        }
    }

    fn into_u32(self) -> Result<u32, Error> {
        u32::try_from(self.into_int()?).map_err(|_| type_error("integer out of range"))
    }

    fn into_strings(self) -> Result<Vec<String>, Error> {
        match self {
            Reply::Nil => Ok(Vec::new()),
            Reply::Array(items) => items
                .into_iter()
                .map(|i| match i {
                    Reply::Bulk(b) => {
                        String::from_utf8(b).map_err(|_| type_error("not valid UTF-8"))
                    }
                    Reply::Status(s) => Ok(s),
                    other => Err(type_error(&format!("not a string: {other:?}"))),
                })
                .collect(),
            other => Err(type_error(&format!("not a list: {other:?}"))),
        }
    }

    /// Spin's `RedisResults`: arrays flattened.
    fn flatten(self, out: &mut Vec<RedisResult>) {
        match self {
            Reply::Nil => out.push(RedisResult::Nil),
            Reply::Int(i) => out.push(RedisResult::Int64(i)),
            Reply::Bulk(b) => out.push(RedisResult::Binary(b)),
            Reply::Status(s) => out.push(RedisResult::Status(s)),
            Reply::Array(items) => items.into_iter().for_each(|i| i.flatten(out)),
            // Error replies are answered as errors before this.
            Reply::Error(e) => out.push(RedisResult::Status(e)),
        }
    }
}

fn strings(values: Vec<String>) -> impl Iterator<Item = Vec<u8>> {
    values.into_iter().map(String::into_bytes)
}

type R<T> = wasmtime::Result<Result<T, Error>>;

impl redis::Host for RedisInstance {}

impl redis::HostConnection for RedisInstance {
    async fn open(&mut self, address: String) -> R<Resource<RedisConnection>> {
        if !self.allowed.allows_outbound_url(&address, "redis") {
            return Ok(Err(Error::InvalidAddress));
        }
        let parsed = match parse_address(&address) {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        if self.open >= MAX_CONNECTIONS {
            return Ok(Err(Error::TooManyConnections));
        }
        let conn = match RedisConnection::connect(&parsed).await {
            Ok(c) => c,
            Err(e) => return Ok(Err(Error::Other(e.to_string()))),
        };
        let r = self.table.push(conn)?;
        self.open += 1;
        Ok(Ok(r))
    }

    async fn publish(
        &mut self,
        c: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> R<()> {
        let args = vec![b"PUBLISH".to_vec(), channel.into_bytes(), payload];
        Ok(self.call(&c, args).await.map(drop))
    }

    async fn get(&mut self, c: Resource<RedisConnection>, key: String) -> R<Option<Vec<u8>>> {
        let args = vec![b"GET".to_vec(), key.into_bytes()];
        Ok(self.call(&c, args).await.and_then(Reply::into_bytes_opt))
    }

    async fn set(&mut self, c: Resource<RedisConnection>, key: String, value: Vec<u8>) -> R<()> {
        let args = vec![b"SET".to_vec(), key.into_bytes(), value];
        Ok(self.call(&c, args).await.map(drop))
    }

    async fn incr(&mut self, c: Resource<RedisConnection>, key: String) -> R<i64> {
        let args = vec![b"INCRBY".to_vec(), key.into_bytes(), b"1".to_vec()];
        Ok(self.call(&c, args).await.and_then(Reply::into_int))
    }

    async fn del(&mut self, c: Resource<RedisConnection>, keys: Vec<String>) -> R<u32> {
        let args = std::iter::once(b"DEL".to_vec())
            .chain(strings(keys))
            .collect();
        Ok(self.call(&c, args).await.and_then(Reply::into_u32))
    }

    async fn sadd(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> R<u32> {
        let args = [b"SADD".to_vec(), key.into_bytes()]
            .into_iter()
            .chain(strings(values))
            .collect();
        Ok(match self.call(&c, args).await {
            Err(Error::Other(m)) if m.starts_with("WRONGTYPE") => Err(Error::TypeError),
            r => r.and_then(Reply::into_u32),
        })
    }

    async fn smembers(&mut self, c: Resource<RedisConnection>, key: String) -> R<Vec<String>> {
        let args = vec![b"SMEMBERS".to_vec(), key.into_bytes()];
        Ok(self.call(&c, args).await.and_then(Reply::into_strings))
    }

    async fn srem(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> R<u32> {
        let args = [b"SREM".to_vec(), key.into_bytes()]
            .into_iter()
            .chain(strings(values))
            .collect();
        Ok(self.call(&c, args).await.and_then(Reply::into_u32))
    }

    async fn execute(
        &mut self,
        c: Resource<RedisConnection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> R<Vec<RedisResult>> {
        let args = std::iter::once(command.into_bytes())
            .chain(arguments.into_iter().map(|a| match a {
                RedisParameter::Int64(i) => i.to_string().into_bytes(),
                RedisParameter::Binary(b) => b,
            }))
            .collect();
        Ok(self.call(&c, args).await.map(|reply| {
            let mut out = Vec::new();
            reply.flatten(&mut out);
            out
        }))
    }

    async fn drop(&mut self, c: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        self.open = self.open.saturating_sub(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = parse_address("redis://127.0.0.1:6380").unwrap();
        assert_eq!((a.host.as_str(), a.port, a.db), ("127.0.0.1", 6380, 0));
        let a = parse_address("redis://u:p%40ss@localhost/3").unwrap();
        assert_eq!(
            (a.username.as_deref(), a.password.as_deref(), a.port, a.db),
            (Some("u"), Some("p@ss"), 6379, 3)
        );
        assert!(matches!(
            parse_address("http://x"),
            Err(Error::InvalidAddress)
        ));
        assert!(matches!(parse_address("rediss://x"), Err(Error::Other(_))));
    }

    #[tokio::test]
    async fn replies() {
        let mut input: &[u8] =
            b"*3\r\n$3\r\nabc\r\n:42\r\n*2\r\n+OK\r\n$-1\r\n-ERR nope\r\n$0\r\n\r\n";
        let mut budget = MAX_HOST_BUFFERED_BYTES;
        let r = read_reply(&mut input, &mut budget).await.unwrap();
        let mut flat = Vec::new();
        r.flatten(&mut flat);
        assert_eq!(flat.len(), 4);
        assert!(matches!(&flat[0], RedisResult::Binary(b) if b == b"abc"));
        assert!(matches!(flat[1], RedisResult::Int64(42)));
        assert!(matches!(&flat[2], RedisResult::Status(s) if s == "OK"));
        assert!(matches!(flat[3], RedisResult::Nil));
        let e = read_reply(&mut input, &mut budget).await.unwrap();
        assert_eq!(e, Reply::Error("ERR nope".into()));
        let b = read_reply(&mut input, &mut budget).await.unwrap();
        assert_eq!(b, Reply::Bulk(Vec::new()));
        let mut small = 2;
        let mut big: &[u8] = b"$3\r\nabc\r\n";
        assert!(read_reply(&mut big, &mut small).await.is_err());
    }
}
