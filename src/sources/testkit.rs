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
/// state the previous page left.
pub fn query(window: Window, state: Option<&Value>, page_size: u32) -> Query<'_> {
    Query { window, page: 0, offset: 0, state, page_size }
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
