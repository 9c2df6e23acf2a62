//! Keystone token validation with a key-value cache.
//!
//! A request's `X-Auth-Token` is validated against Keystone's v3 API
//! (`GET /v3/auth/tokens`, authorized by the service's own token) and the
//! resulting identity is cached in a key-value store until the token expires,
//! at most `token_cache_ttl` seconds, so a hot token costs no round trip. The
//! service token is cached the same way. Identity headers a client sends are
//! never consulted.

use std::rc::Rc;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::auth::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::ports::outbound::{send_idempotent, HttpClient, OutRequest};
use crate::ports::KeyValue;
use crate::timestamp::Timestamp;

/// Renew the service token this long before Keystone says it expires.
const SERVICE_TOKEN_MARGIN: i64 = 60;

/// Where Keystone is and how the service authenticates to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeystoneSettings {
    /// Keystone's origin, `http(s)://host:port` (an allowed outbound host).
    pub url: String,
    /// API path below the origin, normally `/v3`.
    pub api_path: String,
    /// Service user name.
    pub username: String,
    /// Service user password.
    pub password: String,
    /// Project the service user's token is scoped to.
    pub project: String,
    /// Domain id of the service user.
    pub user_domain_id: String,
    /// Domain id of the service project.
    pub project_domain_id: String,
    /// Longest time a validated identity is trusted without asking Keystone again.
    pub cache_ttl: i64,
}

impl KeystoneSettings {
    fn tokens_url(&self) -> String {
        format!("{}{}/auth/tokens", self.url, self.api_path)
    }

    /// The 401 every unauthenticated request gets, pointing at Keystone.
    pub fn unauthorized(&self) -> ApiError {
        ApiError::unauthorized("The request you have made requires authentication.").with_header(
            "WWW-Authenticate",
            format!("Keystone uri=\"{}{}\"", self.url, self.api_path),
        )
    }
}

/// Validates tokens through Keystone, caching results in `cache`.
pub struct KeystoneAuth<'a> {
    settings: &'a KeystoneSettings,
    http: Rc<dyn HttpClient>,
    cache: Rc<dyn KeyValue>,
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable("The identity service could not be reached.", e)
}

fn header<'v>(headers: &'v [(String, String)], name: &str) -> Option<&'v str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl<'a> KeystoneAuth<'a> {
    /// An authenticator over the given ports.
    pub fn new(
        settings: &'a KeystoneSettings,
        http: Rc<dyn HttpClient>,
        cache: Rc<dyn KeyValue>,
    ) -> Self {
        KeystoneAuth {
            settings,
            http,
            cache,
        }
    }

    /// The caller behind `token`: 401 when missing, invalid or expired.
    pub fn authenticate(&self, token: Option<&str>) -> ApiResult<Caller> {
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.settings.unauthorized())?;
        let now = Timestamp::now().0;
        let key = format!("auth/token/{}", hex(&Sha256::digest(token.as_bytes())));
        if let Some(cached) = self.cache.get(&key).ok().flatten() {
            if let Ok(entry) = serde_json::from_slice::<Value>(&cached) {
                if entry["until"].as_i64().is_some_and(|u| u > now) {
                    return Ok(caller_from(&entry));
                }
            }
        }
        let token_doc = self.validate(token, true)?;
        let expires = token_doc["expires_at"]
            .as_str()
            .and_then(Timestamp::parse)
            .map_or(now, |t| t.0);
        if expires <= now {
            return Err(self.settings.unauthorized());
        }
        let entry = json!({
            "project_id": token_doc["project"]["id"],
            "user_id": token_doc["user"]["id"],
            "roles": token_doc["roles"]
                .as_array()
                .map(|r| r.iter().filter_map(|x| x["name"].as_str()).collect::<Vec<_>>())
                .unwrap_or_default(),
            "until": expires.min(now + self.settings.cache_ttl.max(0)),
        });
        // A cache that cannot be written only costs the next request a round trip.
        let _ = self.cache.set(&key, entry.to_string().as_bytes());
        Ok(caller_from(&entry))
    }

    /// Asks Keystone about `token`; retries once with a fresh service token.
    fn validate(&self, token: &str, retry: bool) -> ApiResult<Value> {
        let service = self.service_token(!retry)?;
        let mut resp = send_idempotent(
            self.http.as_ref(),
            OutRequest {
                method: http::Method::GET,
                url: self.settings.tokens_url(),
                headers: vec![
                    ("X-Auth-Token".into(), service),
                    ("X-Subject-Token".into(), token.to_string()),
                    ("Accept".into(), "application/json".into()),
                ],
                body: Vec::new(),
            },
        )
        .map_err(unavailable)?;
        match resp.status {
            200 => {
                let text = resp.read_text(1 << 20).map_err(unavailable)?;
                let doc: Value = serde_json::from_str(&text).map_err(unavailable)?;
                Ok(doc["token"].clone())
            }
            401 | 403 if retry => {
                // Our own token was refused (expired, revoked): renew and retry.
                // A failed delete is harmless: the renewed token overwrites it.
                let _ = self.cache.delete("auth/service-token");
                self.validate(token, false)
            }
            404 | 401 => Err(self.settings.unauthorized()),
            other => Err(unavailable(format!("HTTP {other} from token validation"))),
        }
    }

    /// The service's own token, from the cache or a fresh password login.
    fn service_token(&self, fresh: bool) -> ApiResult<String> {
        let now = Timestamp::now().0;
        if !fresh {
            if let Some(v) = self.cache.get("auth/service-token").ok().flatten() {
                if let Ok(doc) = serde_json::from_slice::<Value>(&v) {
                    if doc["expires"]
                        .as_i64()
                        .is_some_and(|e| e - SERVICE_TOKEN_MARGIN > now)
                    {
                        if let Some(t) = doc["token"].as_str() {
                            return Ok(t.to_string());
                        }
                    }
                }
            }
        }
        let s = self.settings;
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": s.username, "domain": {"id": s.user_domain_id}, "password": s.password}}},
            "scope": {"project": {"name": s.project, "domain": {"id": s.project_domain_id}}}
        }});
        let mut resp = send_idempotent(
            self.http.as_ref(),
            OutRequest {
                method: http::Method::POST,
                url: s.tokens_url(),
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: body.to_string().into_bytes(),
            },
        )
        .map_err(unavailable)?;
        if resp.status != 201 {
            return Err(unavailable(format!(
                "the service user could not log in (HTTP {})",
                resp.status
            )));
        }
        let token = header(&resp.headers, "x-subject-token")
            .ok_or_else(|| unavailable("no X-Subject-Token"))?
            .to_string();
        let text = resp.read_text(1 << 20).map_err(unavailable)?;
        let expires = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|d| d["token"]["expires_at"].as_str().and_then(Timestamp::parse))
            .map_or(now + 300, |t| t.0);
        // A cache that cannot be written only costs the next request a login.
        let _ = self.cache.set(
            "auth/service-token",
            json!({"token": token, "expires": expires})
                .to_string()
                .as_bytes(),
        );
        Ok(token)
    }
}

fn caller_from(entry: &Value) -> Caller {
    let roles: Vec<&str> = entry["roles"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    Caller::new(
        entry["project_id"].as_str().map(str::to_string),
        entry["user_id"].as_str().map(str::to_string),
        &roles,
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::memory::MemoryKv;
    use crate::ports::outbound::{OutResponse, OutboundError};
    use std::cell::RefCell;

    /// A scripted Keystone: answers by URL/method and counts calls.
    struct FakeKeystone {
        calls: RefCell<Vec<String>>,
        valid: &'static [&'static str],
    }

    impl HttpClient for FakeKeystone {
        fn send(&self, req: OutRequest) -> Result<OutResponse, OutboundError> {
            let subject = req
                .headers
                .iter()
                .find(|(k, _)| k == "X-Subject-Token")
                .map(|(_, v)| v.clone());
            self.calls.borrow_mut().push(format!(
                "{} {}",
                req.method,
                subject.clone().unwrap_or_default()
            ));
            let (status, headers, body) = match (req.method.as_str(), subject) {
                ("POST", _) => (
                    201,
                    vec![("x-subject-token".to_string(), "svc".to_string())],
                    json!({"token": {"expires_at": "2999-01-01T00:00:00.000000Z"}}),
                ),
                ("GET", Some(t)) if self.valid.contains(&t.as_str()) => (
                    200,
                    vec![],
                    json!({"token": {"expires_at": "2999-01-01T00:00:00Z", "user": {"id": "u1"},
                        "project": {"id": "p1"}, "roles": [{"name": "member"}, {"name": "reader"}]}}),
                ),
                _ => (404, vec![], json!({})),
            };
            Ok(OutResponse {
                status,
                headers,
                body: Box::new(std::io::Cursor::new(body.to_string().into_bytes())),
            })
        }
    }

    fn settings() -> KeystoneSettings {
        let vars = crate::settings::fixed_vars(&[
            ("auth_strategy", "keystone"),
            ("keystone_url", "http://ks:5000"),
        ]);
        match crate::settings::AuthSettings::load(&vars).unwrap().strategy {
            crate::settings::AuthStrategy::Keystone(ks) => ks,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn validates_once_then_serves_from_the_cache() {
        let ks = Rc::new(FakeKeystone {
            calls: RefCell::new(vec![]),
            valid: &["good"],
        });
        let kv = Rc::new(MemoryKv::default());
        let s = settings();
        let auth = KeystoneAuth::new(&s, ks.clone(), kv.clone());
        let c = auth.authenticate(Some("good")).unwrap();
        assert_eq!(c.project_id.as_deref(), Some("p1"));
        assert!(c.has_role("member") && !c.is_admin());
        assert_eq!(ks.calls.borrow().len(), 2, "service login + validation");
        for _ in 0..10 {
            auth.authenticate(Some("good")).unwrap();
        }
        assert_eq!(ks.calls.borrow().len(), 2, "cached");
        let err = auth.authenticate(Some("bad")).unwrap_err();
        assert_eq!(err.status, http::StatusCode::UNAUTHORIZED);
        assert_eq!(err.headers[0].1, "Keystone uri=\"http://ks:5000/v3\"");
        assert_eq!(ks.calls.borrow().len(), 3, "service token reused");
        assert_eq!(
            auth.authenticate(None).unwrap_err().status,
            http::StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn cache_entries_expire_with_the_ttl() {
        let ks = Rc::new(FakeKeystone {
            calls: RefCell::new(vec![]),
            valid: &["good"],
        });
        let kv = Rc::new(MemoryKv::default());
        let mut s = settings();
        s.cache_ttl = 0;
        let auth = KeystoneAuth::new(&s, ks.clone(), kv);
        auth.authenticate(Some("good")).unwrap();
        auth.authenticate(Some("good")).unwrap();
        assert_eq!(
            ks.calls.borrow().len(),
            3,
            "a zero TTL validates every time"
        );
    }
}
