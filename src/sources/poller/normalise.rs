//! Normalising a page: parse (where the API left events as text) and map
//! each event to ECS, a large page in one part per core on the blocking
//! pool, in the API's order.

use super::Poller;
use crate::event::{as_sent, needs_tree, normalise_text, Event};
use crate::sources::api::{parse_wanted, SourceApi, Unparsed};
use crate::sources::SourceError;
use crate::transport::http::excerpt;
use chrono::{DateTime, Utc};
use serde_json::Value;

impl Poller {
    /// Parse (where the API left them as text) and normalise a page's
    /// events, in order. A large page (a catch-up's) is cut into one part
    /// per core, each done on the blocking pool, so a single source uses
    /// every core; a small one is done in place.
    pub(super) async fn normalise_page(
        &self,
        events: Vec<Value>,
        unparsed: Option<Unparsed>,
        index: u64,
        url: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, SourceError> {
        let name = self.settings.name.as_str();
        let failed = |(i, detail): (usize, String)| SourceError::Shape {
            source_name: name.into(),
            url: url.to_owned(),
            // An event that cannot be read or placed against the cursor
            // fails the poll, which keeps it (and the cursor) safe.
            detail: format!("event {i} of page {index} {detail}"),
        };
        let len = events.len() + unparsed.as_ref().map_or(0, Unparsed::len);
        let parts = cores().min(len / PART_MIN).max(1);
        let mut pieces = Vec::with_capacity(parts + 1);
        let per = len.div_ceil(parts).max(1);
        let (mut at, parsed) = (0, events.len());
        let mut events = events.into_iter();
        while at < parsed {
            let part: Vec<Value> = events.by_ref().take(per).collect();
            let n = part.len();
            pieces.push((at, Raw::Parsed(part)));
            at += n;
        }
        if let Some(text) = unparsed {
            for from in (0..text.len()).step_by(per) {
                pieces.push((at + from, Raw::Text(text.slice(from..(from + per).min(text.len())))));
            }
        }
        if pieces.len() <= 1 {
            let Some((first, raw)) = pieces.pop() else { return Ok(Vec::new()) };
            return normalise_part(&*self.api, name, raw, first, now).map_err(failed);
        }
        let mut tasks = Vec::with_capacity(pieces.len());
        for (first, raw) in pieces {
            let (api, name) = (self.api.clone(), name.to_owned());
            tasks.push(tokio::task::spawn_blocking(move || normalise_part(&*api, &name, raw, first, now)));
        }
        let mut out = Vec::with_capacity(len);
        for task in tasks {
            match task.await {
                Ok(part) => out.extend(part.map_err(failed)?),
                Err(e) => match e.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    // Only when the runtime is shutting down.
                    Err(_) => return Err(SourceError::Cancelled),
                },
            }
        }
        Ok(out)
    }
}

/// Events per part below which a page is not cut further.
pub(super) const PART_MIN: usize = 128;

fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Consecutive raw events of a page.
pub(super) enum Raw {
    /// Parsed by the API's `parse`.
    Parsed(Vec<Value>),
    /// Left as text by it.
    Text(Unparsed),
}

/// Normalise consecutive events of a page (parsing them first if they are
/// text); `first` is the page index of the first. Err: the index of an event
/// that cannot be read or has no readable time, and what is wrong with it.
pub(super) fn normalise_part(
    api: &dyn SourceApi,
    name: &str,
    raw: Raw,
    first: usize,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, (usize, String)> {
    let observer = api.observer();
    let timed = |i: usize, raw: &Value| {
        let n = api.normalise(raw);
        match n.timestamp {
            Some(_) => Ok(n),
            None => Err((first + i, format!("has no readable time: {}", api.untimed(raw)))),
        }
    };
    match raw {
        Raw::Parsed(events) => events
            .iter()
            .enumerate()
            .map(|(i, raw)| Ok(normalise_text(name, observer, raw, None, timed(i, raw)?, now).into_journaled()))
            .collect(),
        Raw::Text(text) => (0..text.len())
            .map(|i| {
                let sent = text.text(i);
                let unreadable = |e| (first + i, format!("is not readable JSON ({e}): {}", excerpt(sent)));
                let whole = || text.parse(i).map_err(unreadable);
                let event = match api.wanted() {
                    None => {
                        let raw = whole()?;
                        normalise_text(name, observer, &raw, as_sent(sent), timed(i, &raw)?, now)
                    }
                    // Only what the mapping reads is built; the whole tree
                    // only when the event is written compact or hashed.
                    Some(wanted) => {
                        let raw = parse_wanted(sent, wanted).map_err(unreadable)?;
                        let n = timed(i, &raw)?;
                        let text = as_sent(sent);
                        match needs_tree(text, &n) {
                            true => normalise_text(name, observer, &whole()?, text, n, now),
                            false => normalise_text(name, observer, &raw, text, n, now),
                        }
                    }
                };
                Ok(event.into_journaled())
            })
            .collect(),
    }
}
