//! Unit tests of the parent module.

use super::*;
use crate::ports::OutboundError;

#[test]
fn xml_values() {
    let doc = "<InitiateMultipartUploadResult><Bucket>b</Bucket><UploadId>abc-1</UploadId></InitiateMultipartUploadResult>";
    assert_eq!(xml_value(doc, "UploadId").as_deref(), Some("abc-1"));
    assert_eq!(xml_value(doc, "Nope"), None);
}

struct NoHttp;
impl HttpClient for NoHttp {
    fn send(&self, _req: OutRequest) -> Result<OutResponse, crate::ports::outbound::OutboundError> {
        Err(crate::ports::outbound::OutboundError::Io("offline".into()))
    }
}

fn settings() -> S3Settings {
    S3Settings {
        endpoint: "http://127.0.0.1:9000".into(),
        bucket: "images".into(),
        credentials: Credentials {
            access_key: "a".into(),
            secret_key: "s".into(),
            region: "us-east-1".into(),
        },
        path_style: true,
        part_size: MIN_PART_SIZE,
    }
}

/// Fails the first `failures` sends at the transport level, then answers
/// 200, remembering each request's body.
struct Flaky {
    failures: std::cell::Cell<u32>,
    bodies: std::cell::RefCell<Vec<Vec<u8>>>,
}
impl HttpClient for Flaky {
    fn send(&self, req: OutRequest) -> Result<OutResponse, OutboundError> {
        self.bodies.borrow_mut().push(req.body);
        if self.failures.get() > 0 {
            self.failures.set(self.failures.get() - 1);
            return Err(OutboundError::Io("StreamError::Closed".into()));
        }
        Ok(OutResponse {
            status: 200,
            headers: Vec::new(),
            body: Box::new(std::io::empty()),
        })
    }
}

#[test]
fn transport_failures_are_retried() {
    let flaky = Rc::new(Flaky {
        failures: std::cell::Cell::new(2),
        bodies: Default::default(),
    });
    let s = S3Store::new(settings(), flaky.clone());
    let put = s.call_ok(http::Method::PUT, "k", &[], Vec::new(), vec![7; 10]);
    assert_eq!(put.map(|r| r.status).ok(), Some(200));
    assert_eq!(*flaky.bodies.borrow(), vec![vec![7; 10]; 3]);

    flaky.failures.set(3); // every attempt
    let put = s.call_ok(http::Method::PUT, "k", &[], Vec::new(), Vec::new());
    assert!(matches!(put, Err(BlobError::Store(m)) if m.contains("Closed")));
}

#[test]
fn addressing() {
    let settings = settings();
    let s = S3Store::new(settings.clone(), Rc::new(NoHttp));
    assert_eq!(
        s.address("id/part 1"),
        (
            "http://127.0.0.1:9000/images/id/part%201".to_string(),
            "127.0.0.1:9000".to_string(),
            "/images/id/part%201".to_string()
        )
    );
    let v = S3Store::new(
        S3Settings {
            path_style: false,
            ..settings
        },
        Rc::new(NoHttp),
    );
    assert_eq!(v.address("k").0, "http://images.127.0.0.1:9000/k");
}
