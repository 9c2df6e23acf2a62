//! HTTP route matching, exactly as Spin 4.x does it.
//!
//! Spin (spinframework/spin crates/routes/src/lib.rs) turns each trigger route into a
//! `routefinder` route: a trailing `/...` becomes a `*` wildcard, `:name` segments are
//! parameters, and the route is first "based" (made absolute, one trailing `/` removed).
//! `routefinder` orders routes by specificity, segment by segment from the left: a fixed
//! segment beats a `:param`, which beats a wildcard; then more segments win. The first
//! route in that order that matches the request path (query excluded, leading and trailing
//! `/` ignored) handles the request. This module uses the same `routefinder` crate and the
//! same route rewriting, so precedence and trailing-slash behaviour are Spin's.

use anyhow::{anyhow, Result};

/// One routable trigger.
#[derive(Debug, Clone)]
pub struct RouteEntry {
    /// The route as written in the manifest (`spin-raw-component-route`).
    pub raw: String,
    /// The "based" route (`spin-matched-route`): absolute, one trailing `/` removed.
    pub based: String,
    /// The component serving the route (index chosen by the caller).
    pub component: usize,
    /// Display form used in the start-up listing.
    display_path: String,
    wildcard: bool,
}

impl RouteEntry {
    /// The route as Spin prints it after the base URL at start-up (`/v2/images (wildcard)`,
    /// `/health`; the catch-all `/...` prints as ` (wildcard)`, as in Spin).
    pub fn display(&self) -> String {
        if self.wildcard {
            format!("{} (wildcard)", self.display_path)
        } else {
            self.display_path.clone()
        }
    }

    /// `spin-component-route`: the raw route without a trailing `/...`.
    pub fn raw_or_prefix(&self) -> &str {
        self.raw.strip_suffix("/...").unwrap_or(&self.raw)
    }
}

/// The result of routing one request path.
#[derive(Debug)]
pub struct RouteMatch<'a> {
    /// The matched route.
    pub entry: &'a RouteEntry,
    /// `:name` parameters and the values they captured, in route order.
    pub params: Vec<(String, String)>,
    /// `spin-path-info`: the part of the path matched by the trailing wildcard, with a
    /// leading `/` (and a trailing `/` if the request path had one); empty when none.
    pub path_info: String,
}

/// Routes request paths to trigger routes.
pub struct Router {
    inner: routefinder::Router<usize>,
    entries: Vec<RouteEntry>,
}

/// Spin's `sanitize_with_base("/", route)`: absolute, without one trailing `/`.
pub fn based_route(raw: &str) -> String {
    let abs = if raw.starts_with('/') {
        raw.to_string()
    } else {
        format!("/{raw}")
    };
    match abs.strip_suffix('/') {
        Some(s) => s.to_string(),
        None => abs,
    }
}

impl Router {
    /// Builds a router from `(route, component)` pairs in manifest order.
    pub fn build<'a>(routes: impl IntoIterator<Item = (&'a str, usize)>) -> Result<Self> {
        let mut inner = routefinder::Router::new();
        let mut entries = Vec::new();
        for (raw, component) in routes {
            let based = based_route(raw);
            let (spec, display_path, wildcard) = if let Some(prefix) = based.strip_suffix("/...") {
                (format!("{prefix}/*"), prefix.to_string(), true)
            } else if let Some(prefix) = based.strip_suffix("/*") {
                (based.clone(), prefix.to_string(), true)
            } else {
                (based.clone(), based.clone(), false)
            };
            let index = entries.len();
            inner
                .add(spec.as_str(), index)
                .map_err(|e| anyhow!("Error parsing route {based}: {e}"))?;
            entries.push(RouteEntry {
                raw: raw.to_string(),
                based,
                component,
                display_path,
                wildcard,
            });
        }
        Ok(Self { inner, entries })
    }

    /// The routes in precedence order (the order Spin lists them at start-up).
    pub fn routes(&self) -> impl Iterator<Item = &RouteEntry> {
        self.inner.iter().map(|(_, &i)| &self.entries[i])
    }

    /// Finds the route for a request path (no query string), or `None` (→ 404).
    pub fn route(&self, path: &str) -> Option<RouteMatch<'_>> {
        let m = self.inner.best_match(path)?;
        let entry = &self.entries[*m.handler()];
        let captures = m.captures();
        let params = captures
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let path_info = match captures.wildcard() {
            None => String::new(),
            Some(w) => match (w.is_empty(), path.ends_with('/')) {
                (true, false) => String::new(),
                (true, true) => "/".to_string(),
                (false, false) => format!("/{w}"),
                (false, true) => format!("/{w}/"),
            },
        };
        Some(RouteMatch {
            entry,
            params,
            path_info,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[&str]) -> Router {
        Router::build(routes.iter().enumerate().map(|(i, r)| (*r, i))).unwrap()
    }

    /// The raw route that serves `path`, or `None`.
    fn served(r: &Router, path: &str) -> Option<String> {
        r.route(path).map(|m| m.entry.raw.clone())
    }

    #[test]
    fn exact_routes() {
        let r = router(&["/foo", "/foo/bar"]);
        assert_eq!(served(&r, "/foo").as_deref(), Some("/foo"));
        assert_eq!(served(&r, "/foo/bar").as_deref(), Some("/foo/bar"));
        assert_eq!(
            served(&r, "/foo/"),
            Some("/foo".into()),
            "trailing slash ignored"
        );
        assert_eq!(served(&r, "/foo/baz"), None);
        assert_eq!(served(&r, "/"), None);
    }

    #[test]
    fn catch_all_matches_everything() {
        let r = router(&["/..."]);
        for p in ["/", "/foo/bar", "/abc/", "/this/should/be/captured"] {
            assert_eq!(served(&r, p).as_deref(), Some("/..."), "{p}");
        }
        assert_eq!(r.route("/1/2/3").unwrap().path_info, "/1/2/3");
        assert_eq!(r.route("/").unwrap().path_info, "/");
    }

    #[test]
    fn wildcard_matches_its_own_prefix() {
        let r = router(&["/v2/images/..."]);
        assert_eq!(served(&r, "/v2/images").as_deref(), Some("/v2/images/..."));
        assert_eq!(
            served(&r, "/v2/images/x/y").as_deref(),
            Some("/v2/images/...")
        );
        assert_eq!(served(&r, "/v2/imagesx"), None);
        assert_eq!(served(&r, "/v2"), None);
    }

    #[test]
    fn path_info_respects_trailing_slash() {
        let r = router(&["/test/..."]);
        assert_eq!(r.route("/test").unwrap().path_info, "");
        assert_eq!(r.route("/test/").unwrap().path_info, "/");
        assert_eq!(r.route("/test/hello").unwrap().path_info, "/hello");
        assert_eq!(r.route("/test/hello/").unwrap().path_info, "/hello/");
        let exact = router(&["/exact"]);
        assert_eq!(exact.route("/exact").unwrap().path_info, "");
    }

    #[test]
    fn longest_wildcard_wins_in_any_order() {
        let forward = ["/one/...", "/one/two/...", "/one/two/three/..."];
        let mut backward = forward;
        backward.reverse();
        for routes in [forward, backward] {
            let r = router(&routes);
            assert_eq!(
                served(&r, "/one/two/three/four").as_deref(),
                Some("/one/two/three/...")
            );
            assert_eq!(served(&r, "/one/two").as_deref(), Some("/one/two/..."));
            assert_eq!(served(&r, "/one/x").as_deref(), Some("/one/..."));
        }
    }

    #[test]
    fn fixed_beats_param_beats_wildcard_in_any_order() {
        let routes = [
            "/v2/images/...",
            "/v2/images/:id/members/...",
            "/v2/images/:id/members/fixed",
            "/v2/images/special/members/...",
            "/...",
        ];
        // Every rotation of the manifest order gives the same answers.
        for shift in 0..routes.len() {
            let mut rs = routes.to_vec();
            rs.rotate_left(shift);
            let r = router(&rs);
            let s = |p| served(&r, p).unwrap();
            assert_eq!(s("/v2/images"), "/v2/images/...");
            assert_eq!(s("/v2/images/abc"), "/v2/images/...");
            assert_eq!(s("/v2/images/abc/members"), "/v2/images/:id/members/...");
            assert_eq!(s("/v2/images/abc/members/m1"), "/v2/images/:id/members/...");
            assert_eq!(
                s("/v2/images/abc/members/fixed"),
                "/v2/images/:id/members/fixed"
            );
            assert_eq!(
                s("/v2/images/special/members/x"),
                "/v2/images/special/members/..."
            );
            assert_eq!(s("/v2/images/abc/tags/t"), "/v2/images/...");
            assert_eq!(s("/versions"), "/...");
            assert_eq!(s("/"), "/...");
        }
    }

    #[test]
    fn exact_beats_wildcard() {
        let r = router(&["/...", "/one"]);
        assert_eq!(served(&r, "/one").as_deref(), Some("/one"));
        assert_eq!(served(&r, "/one/two").as_deref(), Some("/..."));
        let r = router(&["/one/...", "/one"]);
        assert_eq!(served(&r, "/one").as_deref(), Some("/one"));
        assert_eq!(served(&r, "/one/").as_deref(), Some("/one"));
    }

    #[test]
    fn params_are_captured() {
        let r = router(&["/1/:two/3", "/x/:a/:b/..."]);
        let m = r.route("/1/2/3").unwrap();
        assert_eq!(m.params, [("two".to_string(), "2".to_string())]);
        assert_eq!(m.path_info, "");
        let m = r.route("/x/p/q/rest/of").unwrap();
        assert_eq!(
            m.params,
            [
                ("a".to_string(), "p".to_string()),
                ("b".to_string(), "q".to_string())
            ]
        );
        assert_eq!(m.path_info, "/rest/of");
        assert!(r.route("/1/2").is_none());
    }

    #[test]
    fn headers_values_follow_spin() {
        let r = router(&["/foo/...", "/", "bar/", "/..."]);
        let m = r.route("/foo/bar").unwrap();
        assert_eq!(m.entry.based, "/foo/...");
        assert_eq!(m.entry.raw_or_prefix(), "/foo");
        let root = r.entries.iter().find(|e| e.raw == "/").unwrap();
        assert_eq!(root.based, "");
        assert_eq!(root.raw_or_prefix(), "/");
        let bar = r.entries.iter().find(|e| e.raw == "bar/").unwrap();
        assert_eq!(bar.based, "/bar");
        let all = r.entries.iter().find(|e| e.raw == "/...").unwrap();
        assert_eq!(all.raw_or_prefix(), "");
        assert_eq!(all.display(), " (wildcard)");
        assert_eq!(m.entry.display(), "/foo (wildcard)");
        assert_eq!(served(&r, "/").as_deref(), Some("/"));
        assert_eq!(served(&r, "/bar").as_deref(), Some("bar/"));
    }

    #[test]
    fn listing_is_in_precedence_order() {
        let r = router(&["/...", "/a/...", "/a/b"]);
        let listed: Vec<_> = r.routes().map(|e| e.raw.as_str()).collect();
        assert_eq!(listed, ["/a/b", "/a/...", "/..."]);
        let r = router(&["/", "/foo", "/bar", "/whee/..."]);
        let listed: Vec<_> = r.routes().map(|e| e.raw.as_str()).collect();
        assert_eq!(listed, ["/", "/foo", "/bar", "/whee/..."]);
    }

    #[test]
    fn no_match_is_none() {
        let r = router(&["/a", "/b/..."]);
        assert!(r.route("/c").is_none());
        assert!(r.route("/").is_none());
        let empty = router(&[]);
        assert!(empty.route("/").is_none());
    }
}
