//! Streaming request and response bodies over `wasi:io` streams.

use std::io::{Read, Write};

use glance_core::api::Body;
use spin_sdk::http::{IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use spin_sdk::wit::wasi::http0_2_0::types::IncomingBody;
use wasi::io::streams::{InputStream, OutputStream};

/// The request body as `std::io::Read`, read straight from the host stream.
pub struct RequestBody {
    // Field order matters: the stream must be dropped before its body.
    stream: Option<InputStream>,
    _body: Option<IncomingBody>,
}

impl RequestBody {
    /// Takes the body of `req` (empty if it was already taken).
    pub fn new(req: &IncomingRequest) -> Self {
        let body = req.consume().ok();
        let stream = body.as_ref().and_then(|b| b.stream().ok());
        RequestBody {
            stream,
            _body: body,
        }
    }
}

impl Read for RequestBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &mut self.stream {
            Some(s) => Read::read(s, buf),
            None => Ok(0),
        }
    }
}

/// Sends `response` through `out`, then writes `body` into it and finishes it.
/// A body that fails midway is abandoned unfinished, so the client sees a
/// broken transfer instead of a short one that looks complete.
///
/// As much of the body as the host stream takes without blocking (one write of
/// up to its budget, 1 MiB in wasmtime-wasi-http) is written *before* the
/// response is handed over, and a body that ends there is finished first too:
/// every JSON answer and every image of one chunk. Spin starts writing the
/// response head to the socket as soon as `out.set` returns; a body written
/// after that races it, and when the head wins it goes out in a segment of its
/// own and the body waits behind Nagle's algorithm for the client's delayed
/// ACK (about 40 ms: Spin does not set TCP_NODELAY). Written first, head and
/// body leave in one `writev`.
pub fn write_body(out: ResponseOutparam, response: OutgoingResponse, body: Body) {
    let Ok(outgoing) = response.body() else {
        out.set(response);
        return;
    };
    let Ok(mut stream) = outgoing.write() else {
        out.set(response);
        return;
    };
    // What is left to write once the response is handed over.
    let rest = match body {
        Body::Empty => Rest::Done,
        Body::Bytes(bytes) => match write_now(&stream, &bytes) {
            Some(true) => Rest::Done,
            Some(false) => Rest::Failed,
            None => Rest::Body(Body::Bytes(bytes)),
        },
        Body::Stream(mut chunks) => match chunks.next() {
            None => Rest::Done,
            Some(Err(_)) => Rest::Failed,
            Some(Ok(first)) => match write_now(&stream, &first) {
                Some(true) => match chunks.next() {
                    None => Rest::Done,
                    Some(next) => {
                        Rest::Body(Body::Stream(Box::new(std::iter::once(next).chain(chunks))))
                    }
                },
                Some(false) => Rest::Failed,
                None => Rest::Body(Body::Stream(Box::new(
                    std::iter::once(Ok(first)).chain(chunks),
                ))),
            },
        },
    };
    let complete = match rest {
        Rest::Done => {
            drop(stream);
            let _ = OutgoingBody::finish(outgoing, None);
            out.set(response);
            return;
        }
        Rest::Failed => {
            // Handed over unfinished: the client sees a broken transfer.
            out.set(response);
            false
        }
        Rest::Body(body) => {
            out.set(response);
            write_all(&mut stream, body)
        }
    };
    drop(stream);
    if complete {
        // The client has all it will get; a failure here has no one to tell.
        let _ = OutgoingBody::finish(outgoing, None);
    }
}

enum Rest {
    Done,
    Failed,
    Body(Body),
}

/// Writes `bytes` in one write if the stream takes that many now: `Some(ok)`;
/// `None` if it would have to wait (nothing written).
fn write_now(stream: &OutputStream, bytes: &[u8]) -> Option<bool> {
    if bytes.is_empty() {
        return Some(true);
    }
    match stream.check_write() {
        Ok(n) if n >= bytes.len() as u64 => Some(stream.write(bytes).is_ok()),
        Ok(_) => None,
        Err(_) => Some(false),
    }
}

fn write_all(stream: &mut OutputStream, body: Body) -> bool {
    match body {
        Body::Empty => true,
        Body::Bytes(bytes) => stream
            .write_all(&bytes)
            .and_then(|_| stream.flush())
            .is_ok(),
        Body::Stream(chunks) => {
            for chunk in chunks {
                match chunk {
                    Ok(c) => {
                        if stream.write_all(&c).is_err() {
                            return false;
                        }
                    }
                    Err(_) => return false,
                }
            }
            stream.flush().is_ok()
        }
    }
}
