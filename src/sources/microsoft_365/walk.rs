//! The list-then-fetch walk of one window, as the poller's page states:
//! for each content type in turn, start its subscription (once per run),
//! list its content blobs created in the window (following `NextPageUri`),
//! then fetch each blob's `contentUri`, a page of records each. The state
//! handed from page to page ([`Walk`]) holds the blobs still to fetch and
//! the listing's next page.
//!
//! It lives here rather than in the poller: the poller's hooks already walk
//! several requests per window through `Next::Page` states, so the engine
//! needed only what no hook can do (records kept whatever their time,
//! `SourceApi::filters_by_arrival`; a 400 read as an answer,
//! `Verdict::Accept`). Another list-then-fetch API would lift [`Walk`] into
//! `sources/` as it is.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a walk stands, carried as the page state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Walk {
    /// The content type walked (an index into the configured ones).
    pub ct: usize,
    /// What the next request does.
    pub step: Step,
    /// Whether a listing of this walk named any blob.
    #[serde(default)]
    pub found: bool,
}

/// The next request of a walk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub(super) enum Step {
    /// `POST …/subscriptions/start`.
    Start,
    /// `GET …/subscriptions/content`, or the `NextPageUri` given.
    List {
        /// The listing's next page, verbatim.
        page: Option<String>,
    },
    /// `GET` the first blob's `contentUri`.
    Fetch {
        /// The blobs still to fetch, the next first.
        blobs: Vec<Blob>,
        /// The listing's next page, once these are fetched.
        page: Option<String>,
    },
    /// The silent-empty guard: the listing without a window.
    Guard,
}

/// A content blob listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Blob {
    /// `contentId`.
    pub id: String,
    /// `contentUri`.
    pub uri: String,
    /// `contentCreated`.
    pub created: String,
}

impl Walk {
    /// The state of a page's `Next::Page`.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The state a page carried, if it is one.
    pub fn from_state(state: Option<&Value>) -> Option<Walk> {
        serde_json::from_value(state?.clone()).ok()
    }
}

/// A time as the listing's `startTime`/`endTime` take it (UTC, seconds).
pub(super) fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// A blob listed, with its `contentCreated` read.
pub(super) type Listed = (Blob, Option<DateTime<Utc>>);

/// The blobs of a listing page: each item an object with a `contentId`, a
/// `contentUri` and a `contentCreated`, or the reason it is not.
pub(super) fn blobs(items: &[Value]) -> Result<Vec<Listed>, String> {
    let mut out: Vec<Listed> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let s = |k: &str| item.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
        let (Some(id), Some(uri), Some(created)) = (s("contentId"), s("contentUri"), s("contentCreated")) else {
            return Err(format!(
                "item {i} of the content listing is not a content blob (no contentId, contentUri or contentCreated): {}",
                crate::transport::http::excerpt(item.to_string().as_bytes())
            ));
        };
        // A blob listed twice in one answer is fetched once.
        if out.iter().any(|(b, _)| b.id == id) {
            continue;
        }
        let blob = Blob { id: id.to_owned(), uri: uri.to_owned(), created: created.to_owned() };
        out.push((blob, crate::sources::utc_time(item.get("contentCreated"))));
    }
    Ok(out)
}

/// The `error.code` of a Management API error body (`{"error": {"code":
/// "AF…", "message": …}}`), if it is one.
pub(super) fn error_code(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.pointer("/error/code").and_then(Value::as_str).map(str::to_owned)
}
