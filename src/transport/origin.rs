//! Where credentials may go. A source's credentials (its token, password,
//! API key header, OAuth access token, configured `headers`) are sent only
//! to the origin — scheme, host and port — of the URL it was configured
//! with, plus any `allowed_origins` the operator listed. A URL an API hands
//! out (a `Link` header, a `next` URL, a redirect) is followed only when
//! its origin is one of those; never from `https` to `http`. One rule for
//! every connector, applied here in the HTTP layer (docs/security.md).

use reqwest::redirect::Policy;

/// Redirects followed within one request before it fails.
pub const MAX_REDIRECTS: usize = 5;

/// The origins a client may send credentials to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins {
    all: Vec<url::Origin>,
    /// The configured URL is `https`: nothing goes over `http`, whatever
    /// else is listed.
    https_only: bool,
}

impl Origins {
    /// The origin of the `configured` URL and of `also` (opaque ones, such
    /// as `data:`, are left out: they can never be permitted).
    pub fn pinned<'a>(configured: Option<&'a url::Url>, also: impl IntoIterator<Item = &'a url::Url>) -> Self {
        let mut all = Vec::new();
        for u in configured.into_iter().chain(also) {
            let o = u.origin();
            if o.is_tuple() && !all.contains(&o) {
                all.push(o);
            }
        }
        Origins { all, https_only: configured.is_some_and(|u| u.scheme() == "https") }
    }

    /// Whether a request to `url` may carry the credentials.
    pub fn permits(&self, url: &url::Url) -> bool {
        let o = url.origin();
        o.is_tuple() && self.all.contains(&o) && !(self.https_only && url.scheme() != "https")
    }
}

/// `scheme://host:port` of a URL, for errors and logs: never the path,
/// query or user info, which can carry a token.
pub fn show(url: &url::Url) -> String {
    let o = url.origin();
    if o.is_tuple() {
        o.ascii_serialization()
    } else {
        format!("{}:", url.scheme())
    }
}

/// Which redirects a client follows.
#[derive(Debug, Clone)]
pub enum Redirects {
    /// None: a redirect is an error (the token endpoint, HEC, etcd).
    Refuse,
    /// Those to one of these origins, never `https` → `http`.
    Within(Origins),
}

/// A redirect the client refused to follow; the request fails with it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("redirect to {origin} refused: {why}")]
pub struct RedirectRefused {
    /// Where the redirect pointed (origin only).
    pub origin: String,
    /// Why it was refused.
    pub why: &'static str,
}

impl RedirectRefused {
    /// The refusal in an error's chain of causes, if that is what failed.
    pub fn find<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e RedirectRefused> {
        let mut cause = Some(e);
        while let Some(c) = cause {
            if let Some(r) = c.downcast_ref::<RedirectRefused>() {
                return Some(r);
            }
            cause = c.source();
        }
        None
    }
}

impl Redirects {
    /// The client policy (clients of their own: HEC, etcd). Sources share
    /// clients that follow nothing and follow redirects themselves with
    /// [`Redirects::judge`] (`transport::redirect`).
    pub fn policy(self) -> Policy {
        Policy::custom(move |attempt| match self.judge(attempt.url(), attempt.previous()) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        })
    }

    /// Whether a redirect to `to` may be followed, `previous` being the
    /// URLs asked so far (the first request's included): never for
    /// [`Redirects::Refuse`], never from `https` to `http`, only to the
    /// origins permitted, and at most [`MAX_REDIRECTS`] in one request.
    pub fn judge(&self, to: &url::Url, previous: &[url::Url]) -> Result<(), RedirectRefused> {
        let refuse = |why| Err(RedirectRefused { origin: show(to), why });
        let downgrade = to.scheme() == "http" && previous.iter().any(|u| u.scheme() == "https");
        match self {
            Redirects::Refuse => refuse("this endpoint's requests carry secrets and are never redirected"),
            _ if downgrade => refuse("from https to http"),
            Redirects::Within(origins) if !origins.permits(to) => refuse("not the configured origin"),
            _ if previous.len() > MAX_REDIRECTS => refuse("too many redirects"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn origin_is_scheme_host_and_port() {
        let o = Origins::pinned(Some(&u("https://api.example.com/v1/audit?x=1")), []);
        assert!(o.permits(&u("https://api.example.com/other/path")));
        assert!(o.permits(&u("https://api.example.com:443/p")), "the default port is the same origin");
        assert!(!o.permits(&u("http://api.example.com/v1")), "another scheme");
        assert!(!o.permits(&u("https://api.example.com:8443/v1")), "another port");
        assert!(!o.permits(&u("https://evil.example.com/v1")), "another host");
        assert!(!o.permits(&u("https://api.example.com.evil.net/v1")), "a host with the same prefix");
        assert!(!o.permits(&u("data:text/plain,x")));
    }

    /// An `https` source never sends to `http`, even to an origin listed.
    #[test]
    fn an_https_source_never_downgrades() {
        let also = u("http://mirror.example.com");
        let o = Origins::pinned(Some(&u("https://api.example.com")), [&also]);
        assert!(!o.permits(&u("http://mirror.example.com/page")));
        let o = Origins::pinned(Some(&u("http://api.example.com")), [&also]);
        assert!(o.permits(&u("http://mirror.example.com/page")), "an http source was configured so");
    }

    #[test]
    fn judge_follows_only_within_the_origins_and_a_bounded_count() {
        let within = Redirects::Within(Origins::pinned(Some(&u("https://api.example.com/v1")), []));
        let first = [u("https://api.example.com/v1")];
        assert!(within.judge(&u("https://api.example.com/v2"), &first).is_ok());
        let why = |r: Result<(), RedirectRefused>| r.map_err(|e| e.why).err();
        assert_eq!(why(within.judge(&u("https://evil.example.com/"), &first)), Some("not the configured origin"));
        assert_eq!(why(within.judge(&u("http://api.example.com/v2"), &first)), Some("from https to http"));
        let many: Vec<url::Url> = (0..=MAX_REDIRECTS).map(|i| u(&format!("https://api.example.com/{i}"))).collect();
        assert!(within.judge(&u("https://api.example.com/x"), &many[..MAX_REDIRECTS]).is_ok());
        assert_eq!(why(within.judge(&u("https://api.example.com/x"), &many)), Some("too many redirects"));
        let refused = Redirects::Refuse.judge(&u("https://api.example.com/v2"), &first).unwrap_err();
        assert_eq!(refused.origin, "https://api.example.com");
        assert!(refused.why.contains("never redirected"));
    }

    #[test]
    fn shown_origin_has_no_path_query_or_user() {
        assert_eq!(show(&u("https://user:pw@h.example:8443/p/tok?key=secret")), "https://h.example:8443");
    }
}
