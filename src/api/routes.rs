//! Route tables: each component lists its paths once, with the handler of
//! each method, and that one table gives both dispatch and the 405 `Allow`
//! header (as axum's `Router::route(path, get(a).post(b))` does).
//!
//! A pattern is a path of fixed segments and `{name}` parameters, matched
//! segment by segment; a parameter matches one non-empty segment and is
//! percent-decoded. When two patterns match a path (`/v1/images/detail` and
//! `/v1/images/{image_id}`), a fixed segment beats a parameter at the first
//! place they differ, as Spin's router decides, so order does not matter.

use std::ops::Index;

use crate::api::ApiRequest;
use crate::error::{ApiError, ApiResult};

/// One path and what each method does there. `H` is the component's handler
/// type, e.g. `fn(&Ctx, &mut ApiRequest, &Params) -> ApiResult<ApiResponse>`.
pub(crate) struct Route<H: 'static> {
    /// The pattern, e.g. `/v2/images/{image_id}/tags/{tag}`.
    pub path: &'static str,
    /// Method name and handler, in the order `Allow` lists them.
    pub methods: &'static [(&'static str, H)],
}

/// The parameters a pattern captured, by name.
#[derive(Debug, Default)]
pub(crate) struct Params {
    values: Vec<(&'static str, String)>,
}

impl Params {
    /// The value of parameter `name`, if the pattern has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Index<&str> for Params {
    type Output = str;

    /// The value of parameter `name`; the route table guarantees it exists.
    fn index(&self, name: &str) -> &str {
        self.get(name).unwrap_or_default()
    }
}

/// What a request matched.
pub(crate) struct Matched<H> {
    /// The route's pattern (for the log).
    pub path: &'static str,
    /// The handler of the request's method.
    pub handler: H,
    /// The captured parameters.
    pub params: Params,
}

/// Finds the route of `req`: 404 when no pattern matches, 405 with `Allow`
/// when one does but not for this method. Needs no identity.
pub(crate) fn find<H: Copy>(table: &[Route<H>], req: &ApiRequest) -> ApiResult<Matched<H>> {
    let mut best: Option<(&Route<H>, Params)> = None;
    for route in table {
        let Some(params) = capture(route.path, &req.path) else {
            continue;
        };
        if best
            .as_ref()
            .is_none_or(|(b, _)| more_specific(route.path, b.path))
        {
            best = Some((route, params));
        }
    }
    let Some((route, params)) = best else {
        return Err(ApiError::no_resource());
    };
    let method = req.method.as_str();
    match route.methods.iter().find(|(m, _)| *m == method) {
        Some((_, handler)) => Ok(Matched {
            path: route.path,
            handler: *handler,
            params,
        }),
        None => {
            let allowed: Vec<&str> = route.methods.iter().map(|(m, _)| *m).collect();
            Err(ApiError::method_not_allowed(&allowed))
        }
    }
}

/// Whether pattern `a` beats `b` (both matched the same path): at the first
/// segment where one is fixed and the other a parameter, the fixed one wins.
fn more_specific(a: &str, b: &str) -> bool {
    let is_param = |s: &str| s.starts_with('{');
    a.split('/')
        .zip(b.split('/'))
        .find(|(x, y)| is_param(x) != is_param(y))
        .is_some_and(|(x, _)| !is_param(x))
}

/// The parameters of `path` if it matches `pattern`.
fn capture(pattern: &'static str, path: &str) -> Option<Params> {
    let mut want = pattern.split('/');
    let mut have = path.split('/');
    let mut params = Params::default();
    loop {
        match (want.next(), have.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(h)) => {
                if let Some(name) = w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                    if h.is_empty() {
                        return None;
                    }
                    let value = percent_encoding::percent_decode_str(h)
                        .decode_utf8_lossy()
                        .into_owned();
                    params.values.push((name, value));
                } else if w != h {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &'static str, path: &str) -> Option<Vec<(&'static str, String)>> {
        capture(pattern, path).map(|p| p.values)
    }

    #[test]
    fn patterns_match_segment_by_segment() {
        assert_eq!(m("/v2/images", "/v2/images"), Some(vec![]));
        assert_eq!(m("/v2/images", "/v2/images/"), None);
        assert_eq!(m("/v2/images/{id}", "/v2/images/"), None, "empty parameter");
        assert_eq!(
            m("/v2/images/{id}/tags/{tag}", "/v2/images/a/tags/b%20c"),
            Some(vec![("id", "a".into()), ("tag", "b c".into())])
        );
        assert_eq!(m("/v2/images/{id}", "/v2/images/a/file"), None);
        assert_eq!(m("/v2/images", "/v2/imagesx"), None);
    }

    #[test]
    fn a_fixed_segment_beats_a_parameter() {
        assert!(more_specific("/v1/images/detail", "/v1/images/{id}"));
        assert!(!more_specific("/v1/images/{id}", "/v1/images/detail"));
        assert!(!more_specific("/v1/images/{id}", "/v1/images/{image_id}"));
    }
}
