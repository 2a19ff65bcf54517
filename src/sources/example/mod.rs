//! `example`: the smallest complete connector, kept as documentation of
//! what a new vendor takes (`docs/adding-a-connector.md`) and as a test
//! that the registry reaches it. It is registered for the tests only
//! (`#[cfg(test)]` on its line in `sources/kinds.rs`), so no user can
//! configure it.
//!
//! The API it reads is made up but typical: `GET {url}/api/v1/audit` with
//! a bearer token, `since`/`until` in RFC 3339, `limit`, and a `next`
//! token while more remains:
//!
//! ```json
//! {"items": [{"id": "a1", "time": "2024-05-01T10:00:00Z", "action": "login",
//!             "actor": {"id": "u1", "name": "bob"}, "ip": "192.0.2.7"}],
//!  "next": "opaque-token"}
//! ```

pub mod config;

use super::api::{json_body, ApiPage, ApiRequest, ApiResponse, Next, Query, ShapeError, SourceApi};
use super::auth::Auth;
use super::common::UrlAndToken;
use super::{endpoint, utc_time};
use crate::event::{rfc3339, Normalised, Observer};
use crate::settings::secret::Env;
use crate::settings::Problem;
pub use config::ExampleConfig;
use serde_json::{json, Value};

/// The hooks of the example API.
#[derive(Debug)]
pub struct Example {
    audit: url::Url,
}

/// Build from config: `url` and `token` (or `token_file`); each problem is
/// reported with its key path under `at`.
pub fn build(
    _cfg: &ExampleConfig,
    required: UrlAndToken,
    at: &str,
    env: &dyn Env,
    problems: &mut Vec<Problem>,
) -> super::Built {
    let token = required.token.resolve(at, env, problems)?;
    Some((Box::new(Example { audit: endpoint(&required.url, "api/v1/audit") }), Auth::Bearer(token)))
}

super::connector!(ExampleConfig => build);

impl SourceApi for Example {
    fn observer(&self) -> Observer {
        Observer { vendor: "Example", product: "Example Audit API" }
    }

    fn request(&self, q: &Query<'_>) -> Result<ApiRequest, ShapeError> {
        let mut url = self.audit.clone();
        url.query_pairs_mut()
            .append_pair("since", &rfc3339(q.window.from))
            .append_pair("until", &rfc3339(q.window.to))
            .append_pair("limit", &q.page_size.to_string());
        if let Some(next) = q.state.and_then(Value::as_str) {
            url.query_pairs_mut().append_pair("cursor", next);
        }
        Ok(ApiRequest::get(url))
    }

    fn parse(&self, _q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, ShapeError> {
        let mut body = json_body(resp)?;
        let Some(Value::Array(items)) = body.get_mut("items").map(Value::take) else {
            return Err(ShapeError(format!("no items in {}", crate::transport::http::excerpt(&resp.body))));
        };
        let next = match body.get("next").and_then(Value::as_str) {
            Some(token) if !token.is_empty() => Next::Page(json!(token)),
            _ => Next::Done,
        };
        Ok(ApiPage::parsed(items, next))
    }

    fn normalise(&self, raw: &Value) -> Normalised {
        let s = |p: &str| raw.pointer(p).and_then(Value::as_str);
        let mut n =
            Normalised { id: s("/id").map(str::to_owned), timestamp: utc_time(raw.get("time")), ..Default::default() };
        n.put_str("event.action", s("/action"))
            .put_str("user.id", s("/actor/id"))
            .put_str("user.name", s("/actor/name"))
            .put_str("source.ip", s("/ip"));
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testkit::{self, query, resp, t, window};

    /// Its own keys.
    const KEYS: &str = "url = \"https://audit.example.com\"\ntoken = \"${EX_TOKEN}\"\n";

    /// Built from its own config type through its registry line.
    fn api() -> Box<dyn SourceApi> {
        let mut env = crate::settings::secret::tests::FakeEnv::default();
        env.vars.insert("EX_TOKEN".into(), "t0k3n".into());
        let cfg: ExampleConfig = testkit::keys(KEYS).unwrap();
        let (api, auth) = testkit::build(&cfg, &env).unwrap();
        assert!(matches!(auth, Auth::Bearer(ref s) if s.expose() == "t0k3n"));
        api
    }

    /// Through the file model: the registry names the type in what `check`
    /// says about a key of another type.
    #[test]
    fn the_registry_reaches_the_connector_and_its_keys_are_its_own() {
        api();
        let config = format!("[[source]]\nname = \"ex\"\ntype = \"example\"\n{KEYS}[[output]]\nname = \"o\"\ntype = \"file\"\npath = \"-\"\n");
        crate::config::parse(&config).unwrap();
        let p = crate::config::parse(&config.replace("token =", "page_size = 10\nquery =")).unwrap_err();
        let p: Vec<String> = p.iter().map(ToString::to_string).collect();
        assert!(p[0].starts_with("source[0].query: is not a key of a example source"), "{p:?}");
        assert!(p.len() == 2 && p[1].starts_with("source[0].token: is required"), "{p:?}");
    }

    #[test]
    fn pages_follow_next_and_events_are_normalised() {
        let api = api();
        let w = window("2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z");
        let req = api.request(&query(w, None, 100)).unwrap();
        assert_eq!(
            req.url.as_str(),
            "https://audit.example.com/api/v1/audit?since=2024-05-01T10%3A00%3A00Z&until=2024-05-01T11%3A00%3A00Z&limit=100"
        );
        let event = json!({"id": "a1", "time": "2024-05-01T10:00:00Z", "action": "login",
                           "actor": {"id": "u1", "name": "bob"}, "ip": "192.0.2.7"});
        let page = api.parse(&query(w, None, 100), &resp(200, &json!({"items": [event], "next": "n2"}))).unwrap();
        assert_eq!(page.next, Next::Page(json!("n2")));
        let state = json!("n2");
        assert!(api.request(&query(w, Some(&state), 100)).unwrap().url.as_str().ends_with("&cursor=n2"));
        let n = api.normalise(&page.events[0]);
        assert_eq!((n.id.as_deref(), n.timestamp), (Some("a1"), Some(t("2024-05-01T10:00:00Z"))));
        assert_eq!(n.fields.get("user.name"), Some(json!("bob")));
        let last = api.parse(&query(w, Some(&state), 100), &resp(200, &json!({"items": []}))).unwrap();
        assert_eq!(last.next, Next::Done);
    }
}
