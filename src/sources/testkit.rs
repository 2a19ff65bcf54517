//! What the connectors' unit tests share: times, a query over a window,
//! JSON answers and the JSON a request sends. Each connector's `tests.rs`
//! keeps only what is its own: its API's answers and its windows. (The
//! fake vendor servers of the integration tests share theirs in
//! `tests/common/`.)

use super::api::{ApiRequest, ApiResponse, Body, Query};
use crate::state::Window;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// An RFC 3339 time.
pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The window `[from, to]`, both RFC 3339.
pub fn window(from: &str, to: &str) -> Window {
    Window { from: t(from), to: t(to) }
}

/// The first request of a walk over `window` (page 0, offset 0), with the
/// state the previous page left, at the real time.
pub fn query(window: Window, state: Option<&Value>, page_size: u32) -> Query<'_> {
    Query { window, page: 0, offset: 0, state, page_size, now: chrono::Utc::now() }
}

/// An answer with `status` and `body` as JSON.
pub fn resp(status: u16, body: &Value) -> ApiResponse {
    ApiResponse { status, headers: Default::default(), body: serde_json::to_vec(body).unwrap().into() }
}

/// The JSON body `req` sends; panics when it sends none.
pub fn sent_json(req: &ApiRequest) -> Value {
    match &req.body {
        Some(Body::Json(v)) => v.clone(),
        other => panic!("expected a JSON body, got {other:?}"),
    }
}

/// A page's raw events as `api` makes them into events of source `name`,
/// each first checked to have an id and a time.
pub fn documents(api: &dyn crate::sources::api::SourceApi, name: &str, raws: &[Value]) -> Vec<crate::event::Event> {
    raws.iter()
        .map(|raw| {
            let n = api.normalise(raw);
            assert!(n.timestamp.is_some() && n.id.is_some(), "{raw}");
            crate::event::normalise(name, api.observer(), raw, n, Utc::now())
        })
        .collect()
}

/// A source type's struct `T` read from its own keys (TOML text without
/// `name`, `type` or the common keys), as the file model reads them: every
/// problem with its key path under `source[0]`.
pub fn keys<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Vec<crate::settings::Problem>> {
    let value: toml::Value = toml::from_str(text).unwrap();
    let mut problems = Vec::new();
    let read = crate::settings::table::table_of::<T>("source[0]", value, &mut problems);
    match read {
        Some(cfg) if problems.is_empty() => Ok(cfg),
        _ => Err(problems),
    }
}

/// What `check` reports (without lines) about a source of type `T` with
/// its own keys `text` and the keys every source has `common`: what
/// reading them, its [`crate::settings::Validate`] impl and the limits of
/// its API find, each as `path: message`.
pub fn problems<T>(text: &str, common: &str) -> Vec<String>
where
    T: serde::de::DeserializeOwned + crate::settings::Validate + super::SourceSpec,
{
    let common: super::SourceCommon = toml::from_str(common).unwrap();
    let mut read = Vec::new();
    let cfg = crate::settings::table::table_of::<T>("source[0]", toml::from_str(text).unwrap(), &mut read);
    let mut p = crate::settings::Problems::default();
    if let Some(cfg) = &cfg {
        cfg.validate("source[0]", &mut p);
        cfg.limits("source[0]", &common, &mut p);
    }
    // A key reported while reading is not reported again (as `check` does).
    let found: Vec<_> = p.0.into_iter().filter(|f| !read.iter().any(|r| r.path == f.path)).collect();
    read.into_iter().chain(found).map(|p| p.to_string()).collect()
}

/// Build a source's hooks and authentication from its type's struct
/// through its registry line (its `Validate` impl, then its `build`).
pub fn build<T>(
    cfg: &T,
    env: &dyn crate::settings::secret::Env,
) -> Result<(Box<dyn super::api::SourceApi>, super::auth::Auth), Vec<crate::settings::Problem>>
where
    T: for<'a> crate::settings::Build<super::BuildCtx<'a>, Output = super::Built>,
{
    let mut problems = Vec::new();
    let built = cfg.build(super::BuildCtx { at: "source[0]", env, problems: &mut problems });
    match built {
        Some(b) if problems.is_empty() => Ok(b),
        _ => Err(problems),
    }
}
