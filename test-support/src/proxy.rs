//! A counting TCP proxy for HTTP/1.1: a test points the service under test at
//! [`CountingProxy::url`] instead of the upstream (e.g. Keystone) and counts
//! the requests that went through.
//!
//! Bytes are forwarded unchanged both ways (a thread per direction). The
//! client-to-upstream side is parsed just enough to find where each request
//! ends (Content-Length or chunked bodies), so keep-alive connections and
//! pipelined requests are counted one by one. A request is counted when its
//! head has been read, before it is passed on, so once its response has
//! arrived the count includes it.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A running proxy (stops accepting and closes its connections when dropped).
pub struct CountingProxy {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The proxy's listening address.
    pub addr: SocketAddr,
    /// Where requests are forwarded to.
    pub upstream: SocketAddr,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    /// Request lines ("GET /v3/auth/tokens HTTP/1.1") in the order they came.
    lines: Mutex<Vec<String>>,
    /// Open client connections, to close on drop.
    open: Mutex<HashMap<u64, TcpStream>>,
    next: AtomicU64,
    stop: AtomicBool,
}

impl CountingProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let state = Arc::new(State::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve(client, upstream, &st));
            }
        });
        CountingProxy {
            url: format!("http://{addr}"),
            addr,
            upstream,
            state,
        }
    }

    /// HTTP requests forwarded since the start or the last [`reset`](Self::reset).
    pub fn requests(&self) -> usize {
        self.lines().len()
    }

    /// Their request lines, e.g. `GET /v3/auth/tokens HTTP/1.1`.
    pub fn request_lines(&self) -> Vec<String> {
        self.lines().clone()
    }

    /// Sets the count back to zero.
    pub fn reset(&self) {
        self.lines().clear();
    }

    fn lines(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.state.lines.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(self.addr);
        for (_, s) in self
            .state
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn serve(client: TcpStream, upstream: SocketAddr, st: &State) {
    if st.stop.load(Ordering::SeqCst) {
        return;
    }
    let Ok(up) = TcpStream::connect(upstream) else {
        return; // nothing forwarded: the client sees the connection close
    };
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let id = st.next.fetch_add(1, Ordering::SeqCst);
    if let Ok(c) = client.try_clone() {
        st.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, c);
    }
    // upstream -> client: plain copy.
    let back = match (up.try_clone(), client.try_clone()) {
        (Ok(mut from), Ok(mut to)) => Some(std::thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        })),
        _ => None,
    };
    // client -> upstream: request by request.
    let mut to_up = up;
    let _ = pump_requests(BufReader::new(client), &mut to_up, st);
    let _ = to_up.shutdown(Shutdown::Write);
    if let Some(t) = back {
        let _ = t.join();
    }
    st.open
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
}

fn is_blank(line: &[u8]) -> bool {
    line == b"\r\n" || line == b"\n"
}

/// Forwards requests from `r` to `up`, recording each request line.
fn pump_requests(mut r: BufReader<TcpStream>, up: &mut TcpStream, st: &State) -> io::Result<()> {
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            if r.read_until(b'\n', &mut line)? == 0 {
                // End of the connection (mid-head: pass on what there is).
                return up.write_all(&head);
            }
            if head.is_empty() && is_blank(&line) {
                up.write_all(&line)?; // stray CRLF between requests
                continue;
            }
            head.extend_from_slice(&line);
            if is_blank(&line) {
                break;
            }
            if head.len() > 1 << 20 {
                // Not HTTP as we know it: forward the rest blindly.
                up.write_all(&head)?;
                io::copy(&mut r, up)?;
                return Ok(());
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut lines = text.lines();
        let request_line = lines.next().unwrap_or("").trim().to_string();
        let mut content_length: Option<u64> = None;
        let mut chunked = false;
        let mut upgrade = request_line.starts_with("CONNECT ");
        for l in lines {
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "content-length" => content_length = v.parse().ok(),
                "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                "upgrade" => upgrade = true,
                _ => {}
            }
        }
        st.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request_line);
        up.write_all(&head)?;
        if upgrade {
            io::copy(&mut r, up)?;
            return Ok(());
        }
        if chunked {
            loop {
                let mut line = Vec::new();
                if r.read_until(b'\n', &mut line)? == 0 {
                    return Ok(());
                }
                up.write_all(&line)?;
                let size = String::from_utf8_lossy(&line);
                let size = size.trim().split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(size, 16)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "chunk size"))?;
                if size == 0 {
                    // Trailers, up to an empty line.
                    loop {
                        let mut t = Vec::new();
                        if r.read_until(b'\n', &mut t)? == 0 {
                            return Ok(());
                        }
                        up.write_all(&t)?;
                        if is_blank(&t) {
                            break;
                        }
                    }
                    break;
                }
                copy_exact(&mut r, up, size)?;
                let mut crlf = Vec::new();
                r.read_until(b'\n', &mut crlf)?;
                up.write_all(&crlf)?;
            }
        } else if let Some(n) = content_length {
            copy_exact(&mut r, up, n)?;
        }
    }
}

fn copy_exact(r: &mut BufReader<TcpStream>, up: &mut TcpStream, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.by_ref().take(n), up)?;
    if copied < n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "body cut short",
        ));
    }
    Ok(())
}
