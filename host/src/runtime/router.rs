//! HTTP route matching with Spin's rules.
//!
//! A route is a path of literal segments, `:name` segments that match any one segment,
//! and an optional trailing `/...` that matches the rest of the path (including
//! nothing). When several routes match, the most specific wins: exact routes beat
//! wildcard routes, more literal segments beat fewer, a literal beats a `:name`.

/// One segment of a route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A parsed `route = "..."` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    raw: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

/// What a request path matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    /// The route as written in the manifest.
    pub route: &'a str,
    /// The route with any `/...` removed: Spin's `spin-component-route`.
    pub component_route: String,
    /// The part of the path the wildcard matched, with a leading `/`, or empty.
    pub path_info: String,
    /// `:name` captures, in route order.
    pub params: Vec<(String, String)>,
}

impl RoutePattern {
    /// Parses a route; `None` when it is not of Spin's form.
    pub fn parse(route: &str) -> Option<Self> {
        let rest = route.strip_prefix('/')?;
        let (body, wildcard) = if rest == "..." {
            ("", true)
        } else if let Some(body) = rest.strip_suffix("/...") {
            (body, true)
        } else {
            (rest, false)
        };
        let mut segments = Vec::new();
        if !body.is_empty() {
            for segment in body.split('/') {
                if segment.is_empty() || segment.contains("...") {
                    return None;
                }
                segments.push(match segment.strip_prefix(':') {
                    Some("") => return None,
                    Some(name) => Segment::Param(name.to_owned()),
                    None => Segment::Literal(segment.to_owned()),
                });
            }
        }
        Some(Self {
            raw: route.to_owned(),
            segments,
            wildcard,
        })
    }

    /// Ordering key: larger is more specific.
    fn specificity(&self) -> (bool, usize, usize) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        (!self.wildcard, literals, self.segments.len())
    }

    /// Matches `path` (without query) against this pattern.
    pub fn matches<'a>(&'a self, path: &str) -> Option<RouteMatch<'a>> {
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        let mut parts = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect::<Vec<_>>()
        };
        // A trailing slash on an exact route is tolerated, as Spin does.
        if !self.wildcard && parts.len() == self.segments.len() + 1 && parts.last() == Some(&"") {
            parts.pop();
        }
        if parts.len() < self.segments.len()
            || (!self.wildcard && parts.len() != self.segments.len())
        {
            return None;
        }
        let mut params = Vec::new();
        for (segment, part) in self.segments.iter().zip(&parts) {
            match segment {
                Segment::Literal(literal) if literal == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((name.clone(), (*part).to_owned())),
            }
        }
        let rest = &parts[self.segments.len()..];
        let path_info = if rest.is_empty() {
            String::new()
        } else {
            format!("/{}", rest.join("/"))
        };
        Some(RouteMatch {
            route: &self.raw,
            component_route: self
                .raw
                .strip_suffix("/...")
                .unwrap_or(&self.raw)
                .to_owned(),
            path_info,
            params,
        })
    }
}

/// All routes of an application, most specific first.
#[derive(Debug, Clone)]
pub struct Router<T> {
    routes: Vec<(RoutePattern, T)>,
}

impl<T> Router<T> {
    /// Builds a router; routes that do not parse are skipped (the manifest validated them).
    pub fn new(routes: impl IntoIterator<Item = (String, T)>) -> Self {
        let mut routes: Vec<_> = routes
            .into_iter()
            .filter_map(|(route, target)| RoutePattern::parse(&route).map(|p| (p, target)))
            .collect();
        routes.sort_by_key(|(pattern, _)| std::cmp::Reverse(pattern.specificity()));
        Self { routes }
    }

    /// The target of the most specific route matching `path`.
    pub fn route<'a>(&'a self, path: &str) -> Option<(&'a T, RouteMatch<'a>)> {
        self.routes
            .iter()
            .find_map(|(pattern, target)| pattern.matches(path).map(|m| (target, m)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router<&'static str> {
        Router::new([
            ("/...".to_owned(), "fallback"),
            ("/api/films/...".to_owned(), "films"),
            ("/api/films/:id".to_owned(), "film"),
            ("/api/films/search".to_owned(), "search"),
            ("/health".to_owned(), "health"),
        ])
    }

    /// The most specific route wins, whatever the manifest order.
    #[test]
    fn most_specific_route_wins() {
        let router = router();
        assert_eq!(
            router.route("/api/films/search").map(|r| *r.0),
            Some("search")
        );
        assert_eq!(router.route("/api/films/42").map(|r| *r.0), Some("film"));
        assert_eq!(
            router.route("/api/films/42/cast").map(|r| *r.0),
            Some("films")
        );
        assert_eq!(router.route("/health").map(|r| *r.0), Some("health"));
        assert_eq!(router.route("/health/x").map(|r| *r.0), Some("fallback"));
        assert_eq!(router.route("/").map(|r| *r.0), Some("fallback"));
    }

    /// A wildcard route matches its own prefix and reports the rest as path info.
    #[test]
    fn wildcard_reports_path_info() {
        let router = Router::new([("/hello/...".to_owned(), ())]);
        let (_, m) = router.route("/hello").expect("prefix matches");
        assert_eq!(m.path_info, "");
        let (_, m) = router.route("/hello/a/b").expect("deeper path matches");
        assert_eq!(m.path_info, "/a/b");
        assert_eq!(m.component_route, "/hello");
        assert!(router.route("/hellox").is_none());
    }

    /// `:name` segments are captured.
    #[test]
    fn params_are_captured() {
        let router = router();
        let (_, m) = router.route("/api/films/42").expect("matches");
        assert_eq!(m.params, vec![("id".to_owned(), "42".to_owned())]);
    }

    /// Malformed routes are refused.
    #[test]
    fn rejects_malformed_routes() {
        for route in ["", "nope", "/a/.../b", "/a//b", "/:"] {
            assert!(RoutePattern::parse(route).is_none(), "{route}");
        }
    }
}
