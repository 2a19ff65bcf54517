//! Normalising a page: parse (where the API left events as text) and map
//! each event to ECS, a large page in one part per core on the blocking
//! pool, in the API's order.

use super::Poller;
use crate::event::{as_sent, needs_tree, normalise_text, Event};
use crate::sources::api::{parse_wanted, SourceApi, Unparsed};
use crate::sources::SourceError;
use crate::state::SetAside;
use crate::telemetry::metrics::name as metric;
use crate::transport::http::excerpt;
use chrono::{DateTime, Utc};
use serde_json::Value;

impl Poller {
    /// [`Poller::sort_page`], failing on the first event that cannot be
    /// read (what a page's events are when nothing may be set aside).
    #[cfg(test)]
    pub(super) async fn normalise_page(
        &self,
        events: Vec<Value>,
        unparsed: Option<Unparsed>,
        index: u64,
        url: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, SourceError> {
        let sorted = self.sort_page(events, unparsed, now).await?;
        match sorted.set_aside.into_iter().next() {
            Some(bad) => Err(self.unreadable(&bad, index, url)),
            None => Ok(sorted.events),
        }
    }

    /// The error for an event that cannot be read.
    pub(super) fn unreadable(&self, bad: &Unreadable, index: u64, url: &str) -> SourceError {
        SourceError::Shape {
            source_name: self.settings.name.clone(),
            url: url.to_owned(),
            detail: format!("event {} of page {index} {}", bad.index, bad.reason),
        }
    }

    /// Keep a page's unreadable events durably as the source's dead
    /// letters before the page is journaled (the cursor then moves past
    /// them), count and log them; unless the source has not `proven` it
    /// can read this API at all, which fails the poll on the first.
    pub(super) async fn put_aside(
        &self,
        bad: Vec<Unreadable>,
        proven: bool,
        index: u64,
        url: &str,
        now: DateTime<Utc>,
    ) -> Result<(), SourceError> {
        let Some(first) = bad.first() else { return Ok(()) };
        if !proven {
            return Err(self.unreadable(first, index, url));
        }
        let name = self.settings.name.as_str();
        tracing::warn!(
            source = %name,
            "{} event(s) of page {index} cannot be read and are set aside (auditrelay dead-letters list --source {name}); the page's other events go on. First: event {} {}",
            bad.len(),
            first.index,
            crate::telemetry::printable(&first.reason)
        );
        let items: Vec<SetAside> = bad
            .iter()
            .map(|b| SetAside::new(&b.bytes, format!("event {} of page {index} from {url} {}", b.index, b.reason), now))
            .collect();
        self.ctx.state.set_aside().put(name, &items).await?;
        self.ctx.metrics.add(metric::EVENTS_SET_ASIDE, &[("source", name)], items.len() as u64);
        Ok(())
    }

    /// Parse (where the API left them as text) and normalise a page's
    /// events, in order, and sort out those that cannot be read. A large
    /// page (a catch-up's) is cut into one part per core, each done on the
    /// blocking pool, so a single source uses every core; a small one is
    /// done in place.
    pub(super) async fn sort_page(
        &self,
        events: Vec<Value>,
        unparsed: Option<Unparsed>,
        now: DateTime<Utc>,
    ) -> Result<Sorted, SourceError> {
        let name = self.settings.name.as_str();
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
            let Some((first, raw)) = pieces.pop() else { return Ok(Sorted::default()) };
            return Ok(normalise_part(&*self.api, name, raw, first, now));
        }
        let mut tasks = Vec::with_capacity(pieces.len());
        for (first, raw) in pieces {
            let (api, name) = (self.api.clone(), name.to_owned());
            tasks.push(tokio::task::spawn_blocking(move || normalise_part(&*api, &name, raw, first, now)));
        }
        let mut out = Sorted { events: Vec::with_capacity(len), set_aside: Vec::new() };
        for task in tasks {
            match task.await {
                Ok(part) => {
                    out.events.extend(part.events);
                    out.set_aside.extend(part.set_aside);
                }
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

/// A page's events: those read, in order, and those that could not be.
#[derive(Default)]
pub(super) struct Sorted {
    /// The events read.
    pub events: Vec<Event>,
    /// The events that could not be read, in order.
    pub set_aside: Vec<Unreadable>,
}

/// An event that cannot be read: not UTF-8, not JSON, or no readable time.
pub(super) struct Unreadable {
    /// Its index in the page.
    pub index: usize,
    /// What is wrong with it ("has no readable time: …").
    pub reason: String,
    /// Its bytes as the API sent them.
    pub bytes: Vec<u8>,
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
/// text); `first` is the page index of the first. An event that cannot be
/// read or has no readable time is sorted out with what is wrong with it.
pub(super) fn normalise_part(api: &dyn SourceApi, name: &str, raw: Raw, first: usize, now: DateTime<Utc>) -> Sorted {
    let observer = api.observer();
    let mut out = Sorted::default();
    let timed = |i: usize, raw: &Value| {
        let n = api.normalise(raw);
        match n.timestamp {
            Some(_) => Ok(n),
            None => Err((first + i, format!("has no readable time: {}", api.untimed(raw)))),
        }
    };
    match raw {
        Raw::Parsed(events) => {
            for (i, raw) in events.iter().enumerate() {
                match timed(i, raw) {
                    Ok(n) => out.events.push(normalise_text(name, observer, raw, None, n, now).into_journaled()),
                    Err((index, reason)) => {
                        out.set_aside.push(Unreadable { index, reason, bytes: raw.to_string().into_bytes() })
                    }
                }
            }
        }
        Raw::Text(text) => {
            for i in 0..text.len() {
                let sent = text.text(i);
                if let Some(bytes) = text.not_utf8(i) {
                    let reason = "is not valid UTF-8".to_owned();
                    out.set_aside.push(Unreadable { index: first + i, reason, bytes: bytes.to_vec() });
                    continue;
                }
                match normalise_sent(api, name, observer, &text, (first, i), now, &timed) {
                    Ok(event) => out.events.push(event.into_journaled()),
                    Err((index, reason)) => out.set_aside.push(Unreadable { index, reason, bytes: sent.to_vec() }),
                }
            }
        }
    }
    out
}

/// Normalises an event, or says (with its page index) why its time cannot be read.
type Timed<'a> = dyn Fn(usize, &Value) -> Result<crate::event::Normalised, (usize, String)> + 'a;

/// Event `i` of `text`, normalised.
fn normalise_sent(
    api: &dyn SourceApi,
    name: &str,
    observer: crate::event::Observer,
    text: &Unparsed,
    (first, i): (usize, usize),
    now: DateTime<Utc>,
    timed: &Timed<'_>,
) -> Result<Event, (usize, String)> {
    let sent = text.text(i);
    let unreadable = |e| (first + i, format!("is not readable JSON ({e}): {}", excerpt(sent)));
    let whole = || text.parse(i).map_err(unreadable);
    Ok(match api.wanted() {
        None => {
            let raw = whole()?;
            normalise_text(name, observer, &raw, as_sent(sent), timed(i, &raw)?, now)
        }
        // Only what the mapping reads is built; the whole tree only when
        // the event is written compact or hashed.
        Some(wanted) => {
            let raw = parse_wanted(sent, wanted).map_err(unreadable)?;
            let n = timed(i, &raw)?;
            let sent = as_sent(sent);
            match needs_tree(sent, &n) {
                true => normalise_text(name, observer, &whole()?, sent, n, now),
                false => normalise_text(name, observer, &raw, sent, n, now),
            }
        }
    })
}
