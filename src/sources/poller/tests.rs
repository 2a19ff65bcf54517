use super::normalise::PART_MIN;
use super::*;
use crate::event::Event;
use crate::settings::units::Rate;
use crate::sources::api::{ApiPage, ApiRequest, ApiResponse, Next, Query, SourceApi};
use crate::sources::testkit::t;
use crate::sources::SourceError;
use crate::telemetry::metrics::name as metric;
use serde_json::Value;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use tokio_util::sync::CancellationToken;

/// The one poller fixture: `api` named `name`, starting at `start`,
/// `page_size` events a page, no lag or lookback, on `clock`, with no
/// journal limits and page permits of its own (other tests' pages must not
/// decide whether a walk reads ahead). Tests change what they need.
fn poller(
    state: Arc<State>,
    name: &str,
    api: Box<dyn SourceApi>,
    start: DateTime<Utc>,
    page_size: u32,
    clock: Clock,
) -> Poller {
    let settings = Settings {
        name: name.into(),
        interval: Duration::from_secs(60),
        start_at: StartAt::At(start),
        page_size,
        lag: Duration::ZERO,
        lookback: Duration::ZERO,
        max_window: None,
        max_pages: DEFAULT_MAX_PAGES,
        max_poll_time: DEFAULT_MAX_POLL_TIME,
    };
    let ctx = SourceContext {
        state,
        metrics: Arc::new(Metrics::default()),
        output_health: Default::default(),
        clock,
        max_journal_bytes: u64::MAX,
        run_ahead_bytes: u64::MAX,
        pages: Arc::new(tokio::sync::Semaphore::new(PAGES_IN_HAND)),
        fetches: Arc::new(tokio::sync::Semaphore::new(FETCH_SLOTS)),
        http: Arc::default(),
        first_poll_spread: Duration::ZERO,
    };
    let request = RequestSettings {
        timeout: Duration::from_secs(5),
        max_response_size: 1 << 24,
        rate_limit: None,
        headers: Default::default(),
        origins: Default::default(),
    };
    Poller::new(settings, request, api, reqwest::Client::new(), Auth::None, ctx)
}

/// The demo source, pages of 50, from 2024-05-01T10:00:00Z, on a clock
/// the test moves.
fn demo_poller(state: Arc<State>, now_ms: Arc<AtomicI64>, lag: Duration) -> Poller {
    let cfg = crate::sources::demo::DemoConfig { rate: Some(Rate::parse("100/s").unwrap()) };
    let api = Box::new(crate::sources::demo::Demo::new(&cfg));
    let clock: Clock =
        Arc::new(move || DateTime::from_timestamp_millis(now_ms.load(AtomicOrdering::SeqCst)).unwrap_or_default());
    let mut p = poller(state, "demo", api, t("2024-05-01T10:00:00Z"), 50, clock);
    p.settings.interval = Duration::from_secs(1);
    p.settings.lag = lag;
    p
}

/// A demo-source poller on a scratch state, and the demo API itself.
fn demo_parts() -> (tempfile::TempDir, Poller, crate::sources::demo::Demo) {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(State::open(dir.path()).unwrap());
    let p = demo_poller(state, Arc::new(AtomicI64::new(1_714_557_660_000)), Duration::ZERO);
    // The embedded demo's rate (`examples/demo.toml`).
    let cfg = crate::sources::demo::DemoConfig { rate: Some(Rate::parse("5/s").unwrap()) };
    (dir, p, crate::sources::demo::Demo::new(&cfg))
}

/// Same id, time and raw event, and the same document byte for byte.
fn assert_same_event(a: &Event, b: &Event) {
    assert_eq!((&a.id, a.timestamp, &a.raw), (&b.id, b.timestamp, &b.raw));
    let (mut x, mut y) = (Vec::new(), Vec::new());
    a.write_document(&mut x);
    b.write_document(&mut y);
    assert_eq!(String::from_utf8(x).unwrap(), String::from_utf8(y).unwrap());
}

/// A page large enough to be cut into parts comes back whole, in the
/// API's order, each event as the one-by-one path builds it; an event
/// without a time in a later part is reported with its page index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_page_is_normalised_in_parts_in_order() {
    let (_dir, p, demo) = demo_parts();
    let events: Vec<Value> = (0..PART_MIN as i64 * 4 + 3).map(|k| demo.event(k)).collect();
    let now = Utc::now();
    let got = p.normalise_page(events.clone(), None, 1, "u", now).await.unwrap();
    assert_eq!(got.len(), events.len());
    for (raw, ev) in events.iter().zip(&got) {
        let one = crate::event::normalise("demo", demo.observer(), raw, demo.normalise(raw), now);
        assert_same_event(ev, &one);
    }

    let mut bad = events;
    let last = bad.len() - 2;
    bad[last]["time"] = Value::String("yesterday".into());
    let err = p.normalise_page(bad, None, 3, "u", now).await.unwrap_err().to_string();
    assert!(err.contains(&format!("event {last} of page 3 has no readable time")), "{err}");
}

/// Events an API left as text are read in parts too: the same events,
/// in order, byte for byte, as from parsed events; one that cannot be
/// read or has no time fails the page with its index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_left_as_text_is_read_in_parts_in_order() {
    let (_dir, p, demo) = demo_parts();
    let split = |events: &[Value]| {
        let body = serde_json::to_vec_pretty(&serde_json::json!({"events": events})).unwrap();
        let resp = ApiResponse { status: 200, headers: Default::default(), body: body.into() };
        super::super::api::json_body_split(&resp, "/events").unwrap().1.unwrap()
    };
    // A page of events as these texts.
    let sent_as = |sent: &[String]| {
        let body = format!("{{\"events\": [{}]}}", sent.join(", "));
        let resp = ApiResponse { status: 200, headers: Default::default(), body: body.into_bytes().into() };
        super::super::api::json_body_split(&resp, "/events").unwrap().1.unwrap()
    };
    let now = Utc::now();
    for n in [0, 1, PART_MIN * 2 - 1, PART_MIN * 4 + 3] {
        let events: Vec<Value> = (0..n as i64).map(|k| demo.event(k)).collect();
        let want = p.normalise_page(events.clone(), None, 1, "u", now).await.unwrap();
        let got = p.normalise_page(Vec::new(), Some(split(&events)), 1, "u", now).await.unwrap();
        assert_eq!(got.len(), n);
        for (a, b) in got.iter().zip(&want) {
            assert_same_event(a, b);
        }
    }

    // Text on one line but not compact is journaled as the API sent it.
    let events: Vec<Value> = (0..PART_MIN as i64 * 2 + 1).map(|k| demo.event(k)).collect();
    let sent: Vec<String> = events.iter().map(|e| format!("{{ {}", &e.to_string()[1..])).collect();
    let text = sent_as(&sent);
    let want = p.normalise_page(events.clone(), None, 3, "u", now).await.unwrap();
    let got = p.normalise_page(Vec::new(), Some(text), 3, "u", now).await.unwrap();
    assert_eq!(got.len(), sent.len());
    for ((a, b), sent) in got.iter().zip(&want).zip(&sent) {
        assert_eq!(&a.raw, sent);
        assert_ne!(a.raw, b.raw, "the parsed path writes it compact");
        assert_eq!((&a.id, a.timestamp, a.fields()), (&b.id, b.timestamp, b.fields()));
    }

    // Only what the mapping reads is built for events with an id; one
    // without is hashed from its whole tree, as the parsed path does.
    let mut events: Vec<Value> = (0..PART_MIN as i64 * 2 + 1).map(|k| demo.event(k)).collect();
    for e in events.iter_mut().step_by(3) {
        e.as_object_mut().unwrap().remove("id");
    }
    let sent: Vec<String> = events.iter().map(|e| format!("{{ {}", &e.to_string()[1..])).collect();
    let text = sent_as(&sent);
    let want = p.normalise_page(events.clone(), None, 3, "u", now).await.unwrap();
    let got = p.normalise_page(Vec::new(), Some(text), 3, "u", now).await.unwrap();
    assert_eq!(got.len(), sent.len());
    for (k, ((a, b), sent)) in got.iter().zip(&want).zip(&sent).enumerate() {
        assert_eq!(&a.raw, sent);
        assert_eq!((&a.id, a.timestamp, a.fields()), (&b.id, b.timestamp, b.fields()));
        if k % 3 == 0 {
            assert_eq!(a.id, crate::event::hash_id(&events[k].to_string()));
        }
    }

    // A value nested deeper than serde_json builds a tree for, where the
    // mapping does not read, does not stop the event.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let events: Vec<Value> = (0..PART_MIN as i64 * 2).map(|k| demo.event(k)).collect();
    let sent: Vec<String> = events.iter().map(|e| format!("{{\"extra\":{deep},{}", &e.to_string()[1..])).collect();
    let text = sent_as(&sent);
    let want = p.normalise_page(events, None, 3, "u", now).await.unwrap();
    let got = p.normalise_page(Vec::new(), Some(text), 3, "u", now).await.unwrap();
    assert_eq!(got.len(), sent.len());
    for ((a, b), sent) in got.iter().zip(&want).zip(&sent) {
        assert_eq!(&a.raw, sent);
        assert_eq!((&a.id, a.timestamp, a.fields()), (&b.id, b.timestamp, b.fields()));
    }

    let mut events: Vec<Value> = (0..PART_MIN as i64 * 4).map(|k| demo.event(k)).collect();
    let late = events.len() - 3;
    events[late]["time"] = Value::Null;
    let err = p.normalise_page(Vec::new(), Some(split(&events)), 2, "u", now).await.unwrap_err().to_string();
    assert!(err.contains(&format!("event {late} of page 2 has no readable time")), "{err}");

    // Valid JSON nested deeper than serde_json builds a tree for.
    let mut items: Vec<String> = (0..PART_MIN as i64 * 4).map(|k| demo.event(k).to_string()).collect();
    let deep = PART_MIN * 3 + 1;
    let nested = format!("{}{}", "[".repeat(200), "]".repeat(200));
    items.insert(deep, nested.clone());
    let body = format!("{{\"events\": [{}]}}", items.join(","));
    let resp = ApiResponse { status: 200, headers: Default::default(), body: body.into_bytes().into() };
    let text = super::super::api::json_body_split(&resp, "/events").unwrap().1.unwrap();
    assert_eq!(text.text(deep), nested.as_bytes());
    let err = p.normalise_page(Vec::new(), Some(text), 4, "u", now).await.unwrap_err().to_string();
    assert!(err.contains(&format!("event {deep} of page 4 is not readable JSON (recursion limit")), "{err}");
}

/// A paged API answering locally: page `k` of `pages` holds events
/// `k * per ..`, one per millisecond from `T0`; each body names the
/// request it answers, and `parse` refuses one that is not the request
/// this step of the walk makes. With `stale` each request also names
/// how many requests the connector built before it (a connector whose
/// requests depend on more than the query): a page read ahead is then
/// always stale.
struct Paged {
    pages: u64,
    per: u64,
    stale: bool,
    /// Requests built so far.
    built: std::sync::atomic::AtomicU64,
    fetched: Arc<std::sync::atomic::AtomicU64>,
    /// The page whose next-page token is its own (a looping API).
    stuck: Option<u64>,
}

const T0_MS: i64 = 1_714_557_600_000;

impl SourceApi for Paged {
    fn observer(&self) -> crate::event::Observer {
        crate::event::Observer { vendor: "test", product: "paged" }
    }
    fn request(&self, q: &Query<'_>) -> Result<ApiRequest, super::super::api::ShapeError> {
        let k = q.state.and_then(Value::as_u64).unwrap_or(0);
        let n = if self.stale { self.built.fetch_add(1, AtomicOrdering::SeqCst) } else { 0 };
        Ok(ApiRequest::get(url::Url::parse(&format!("test://local/p?k={k}&n={n}")).unwrap()))
    }
    fn local(&self, req: &ApiRequest, _now: DateTime<Utc>) -> Option<ApiResponse> {
        self.fetched.fetch_add(1, AtomicOrdering::SeqCst);
        let k: u64 = req.url.query_pairs().find(|(n, _)| n == "k").and_then(|(_, v)| v.parse().ok()).unwrap();
        let events: Vec<Value> = (k * self.per..(k + 1) * self.per)
            .map(|i| {
                let t = DateTime::from_timestamp_millis(T0_MS + i as i64).unwrap();
                serde_json::json!({"id": format!("e{i}"), "t": crate::event::rfc3339(t)})
            })
            .collect();
        let next = if self.stuck == Some(k) {
            serde_json::json!(k)
        } else if k + 1 < self.pages {
            serde_json::json!(k + 1)
        } else {
            Value::Null
        };
        let body = serde_json::json!({"asked": req.url.as_str(), "events": events, "next": next});
        Some(ApiResponse { status: 200, headers: Default::default(), body: body.to_string().into() })
    }
    fn parse(&self, q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, super::super::api::ShapeError> {
        let (body, unparsed) = super::super::api::json_body_split(resp, "/events")?;
        // The page asked for; with `stale`, only the page can match.
        let page = |url: &str| url.split("&n=").next().unwrap_or_default().to_owned();
        let asked = self.request(q)?.url.to_string();
        let answered = body["asked"].as_str().unwrap_or_default();
        if (self.stale && page(answered) != page(&asked)) || (!self.stale && answered != asked) {
            return Err(super::super::api::ShapeError(format!("answer to {} used for {asked}", body["asked"])));
        }
        let next = if body["next"].is_null() { Next::Done } else { Next::Page(body["next"].clone()) };
        Ok(ApiPage { events: Vec::new(), unparsed, next })
    }
    fn normalise(&self, raw: &Value) -> crate::event::Normalised {
        crate::event::Normalised {
            id: raw["id"].as_str().map(str::to_owned),
            timestamp: raw["t"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.to_utc()),
            ..Default::default()
        }
    }
}

/// A poller walking `api` an hour after its first event, pages of
/// `api.per` events.
fn paged_poller(state: Arc<State>, api: Paged) -> Poller {
    let now = DateTime::from_timestamp_millis(T0_MS + 3_600_000).unwrap();
    let (start, per) = (DateTime::from_timestamp_millis(T0_MS).unwrap(), api.per as u32);
    poller(state, "paged", Box::new(api), start, per, Arc::new(move || now))
}

/// The next page is fetched while the current one is normalised, and
/// used only when the walk then makes that very request: with requests
/// nothing else changes, one fetch per page; with requests that
/// change anyway, every read-ahead is dropped and the page fetched again. Either
/// way every event is journaled once, in the API's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_read_ahead_is_used_only_for_the_request_it_answers() {
    for stale in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(State::open(dir.path()).unwrap());
        let (pages, per) = (6, PART_MIN as u64 * 2 + 5);
        let fetched = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let api = Paged { pages, per, stale, built: Default::default(), fetched: fetched.clone(), stuck: None };
        let p = paged_poller(state.clone(), api);
        let report = p.poll_once(&CancellationToken::new()).await.unwrap();
        assert_eq!((report.journaled, report.requests), (pages * per, pages), "stale {stale}");
        let ids: Vec<String> =
            state.journal().read(0, usize::MAX, usize::MAX).unwrap().into_iter().map(|(_, e)| e.event.id).collect();
        let want: Vec<String> = (0..pages * per).map(|i| format!("e{i}")).collect();
        assert_eq!(ids, want, "every event once, in order (stale {stale})");
        let want = if stale { 2 * pages - 1 } else { pages };
        assert_eq!(fetched.load(AtomicOrdering::SeqCst), want, "fetches (stale {stale})");
    }
}

/// Regression (CI, tests/faults.rs with FAULT_SEED=1796024776547953062):
/// a page whose next-page token repeats the request just made was read
/// ahead, so a looping API was asked the same page twice before the
/// walk stopped on the loop. Now it is asked once, and the events up to
/// the loop are journaled once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_token_is_not_read_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(State::open(dir.path()).unwrap());
    let (pages, per) = (6, PART_MIN as u64 * 2 + 5);
    let fetched = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let api = Paged { pages, per, stale: false, built: Default::default(), fetched: fetched.clone(), stuck: Some(2) };
    let p = paged_poller(state.clone(), api);
    let err = p.poll_once(&CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, SourceError::Loop { .. }), "{err}");
    assert_eq!(fetched.load(AtomicOrdering::SeqCst), 3, "pages 0, 1 and 2, each asked once");
    let ids: Vec<String> =
        state.journal().read(0, usize::MAX, usize::MAX).unwrap().into_iter().map(|(_, e)| e.event.id).collect();
    let want: Vec<String> = (0..3 * per).map(|i| format!("e{i}")).collect();
    assert_eq!(ids, want, "the pages before the loop, once each, in order");
}

/// An API that never stops handing out new pages is stopped at
/// `max_pages` (or `max_poll_time`): the walk fails as a runaway, naming
/// the limit, and what it took before is journaled once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_walk_stops_at_its_page_limit() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(State::open(dir.path()).unwrap());
    let fetched = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let api = Paged { pages: u64::MAX, per: 3, stale: false, built: Default::default(), fetched, stuck: None };
    let mut p = paged_poller(state.clone(), api);
    p.settings.max_pages = 7;
    let err = p.poll_once(&CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, SourceError::Runaway { .. }), "{err}");
    assert!(err.to_string().contains("7 pages (max_pages)"), "{err}");
    let ids: Vec<String> =
        state.journal().read(0, usize::MAX, usize::MAX).unwrap().into_iter().map(|(_, e)| e.event.id).collect();
    let want: Vec<String> = (0..7 * 3).map(|i| format!("e{i}")).collect();
    assert_eq!(ids, want, "the pages taken, once each, in order");

    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(State::open(dir.path()).unwrap());
    let fetched = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let api = Paged { pages: u64::MAX, per: 3, stale: false, built: Default::default(), fetched, stuck: None };
    let mut p = paged_poller(state, api);
    p.settings.max_poll_time = Duration::ZERO;
    let err = p.poll_once(&CancellationToken::new()).await.unwrap_err();
    assert!(err.to_string().contains("(max_poll_time)"), "{err}");
}

#[tokio::test]
async fn long_walk_keeps_the_cursor_small_and_takes_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(State::open(dir.path()).unwrap());
    let t0_ms = 1_714_557_600_000i64;
    let now = Arc::new(AtomicI64::new(t0_ms + 60_000));
    let p = demo_poller(state.clone(), now.clone(), Duration::ZERO);
    let cancel = CancellationToken::new();
    let r = p.poll_once(&cancel).await.unwrap();
    assert_eq!(r.journaled, 6001, "100/s over [t0, t0+60s], both ends included");
    assert_eq!(r.requests, 121);
    let c = state.cursors().get("demo").unwrap().unwrap();
    assert!(c.taken.len() <= 2, "cursor keeps only ids at its time, not the walk: {}", c.taken.len());
    assert_eq!(p.poll_once(&cancel).await.unwrap().journaled, 0, "nothing new, nothing twice");
    now.fetch_add(10_000, AtomicOrdering::SeqCst);
    assert_eq!(p.poll_once(&cancel).await.unwrap().journaled, 1000);
    let ids: std::collections::HashSet<String> =
        state.journal().read(0, usize::MAX, usize::MAX).unwrap().into_iter().map(|(_, e)| e.event.id).collect();
    assert_eq!(ids.len(), 7001, "no duplicate ids in the journal");
}

/// Regression: during an oldest-first walk the cursor committed with
/// each page kept every id taken since the walk began, so a catch-up
/// rewrote an ever larger cursor per page (quadratic).
// Paused time: the walk's back-pressure waits and the stop after 500 ms
// advance exactly, without sleeping.
#[tokio::test(start_paused = true)]
async fn cursor_committed_mid_walk_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(State::open(dir.path()).unwrap());
    let now = Arc::new(AtomicI64::new(1_714_557_600_000 + 600_000));
    let mut p = demo_poller(state.clone(), now, Duration::ZERO);
    p.ctx.max_journal_bytes = 200 << 10; // pauses the walk part-way: back-pressure
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.cancel();
    });
    assert!(matches!(p.poll_once(&cancel).await, Err(SourceError::Cancelled)));
    let c = state.cursors().get("demo").unwrap().unwrap();
    let journaled = state.journal().next_seq();
    assert!((100..60_001).contains(&journaled), "stopped part-way: {journaled}");
    assert!(c.taken.len() <= 2, "mid-walk cursor holds {} ids", c.taken.len());
    assert!(state.journal().bytes() >= p.ctx.max_journal_bytes, "paused because the journal was full");
}

/// While every output delivers, a catch-up stops `run_ahead_bytes`
/// ahead of them (quietly: the journal is not full); once an output is
/// down the same walk goes on towards `max_journal_size`, and it ends
/// with every event journaled once.
// Paused time (so one thread): the walk's back-pressure waits and the
// 300 ms between looks advance exactly, without sleeping.
#[tokio::test(start_paused = true)]
async fn a_catch_up_runs_ahead_of_delivering_outputs_only_so_far() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(State::open(dir.path()).unwrap());
    let now = Arc::new(AtomicI64::new(1_714_557_600_000 + 60_000));
    let mut p = demo_poller(state.clone(), now, Duration::ZERO);
    p.ctx.run_ahead_bytes = 200 << 10;
    let health = p.ctx.output_health.clone();
    health.set_down("hec", false);
    let walk = tokio::spawn(async move {
        let r = p.poll_once(&CancellationToken::new()).await;
        (r, p)
    });
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let seq = state.journal().next_seq();
        if seq == last {
            break;
        }
        last = seq;
    }
    assert!(!walk.is_finished(), "paused part-way");
    let bytes = state.journal().bytes();
    assert!(((200 << 10)..(400 << 10)).contains(&bytes), "paused at the lead, within a page or two: {bytes}");
    assert!(last < 6001, "not everything journaled yet: {last}");

    health.set_down("hec", true);
    let (r, p) = tokio::time::timeout(Duration::from_secs(30), walk).await.unwrap().unwrap();
    assert_eq!(r.unwrap().journaled, 6001, "the whole window once an output is down");
    assert!(p.ctx.metrics.series(metric::JOURNAL_FULL).is_empty(), "never reported as full");
    let ids: std::collections::HashSet<String> =
        state.journal().read(0, usize::MAX, usize::MAX).unwrap().into_iter().map(|(_, e)| e.event.id).collect();
    assert_eq!(ids.len(), 6001, "every event once");
    health.set_down("hec", false);
    assert!(!health.an_output_is_down());
}

#[tokio::test]
async fn lag_leaves_young_events_and_a_clock_jump_back_polls_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(State::open(dir.path()).unwrap());
    let t0_ms = 1_714_557_600_000i64;
    let now = Arc::new(AtomicI64::new(t0_ms + 10_000));
    let p = demo_poller(state.clone(), now.clone(), Duration::from_secs(5));
    let cancel = CancellationToken::new();
    assert_eq!(p.poll_once(&cancel).await.unwrap().journaled, 501, "only [t0, now - 5s]");
    now.store(t0_ms, AtomicOrdering::SeqCst); // the host clock jumps back
    let r = p.poll_once(&cancel).await.unwrap();
    assert_eq!((r.journaled, r.requests), (0, 0), "no window before the cursor: nothing asked, nothing lost");
    now.store(t0_ms + 20_000, AtomicOrdering::SeqCst);
    assert_eq!(p.poll_once(&cancel).await.unwrap().journaled, 1000, "resumes exactly after the cursor");
}

/// An API whose first answer asks to wait, then answers one event.
struct WaitsOnce;

impl SourceApi for WaitsOnce {
    fn observer(&self) -> crate::event::Observer {
        crate::event::Observer { vendor: "test", product: "waits" }
    }
    fn request(&self, q: &Query<'_>) -> Result<ApiRequest, super::super::api::ShapeError> {
        let asked = if q.state.is_some() { "again" } else { "first" };
        Ok(ApiRequest::get(url::Url::parse(&format!("test://local/{asked}")).unwrap()))
    }
    fn local(&self, req: &ApiRequest, _now: DateTime<Utc>) -> Option<ApiResponse> {
        let body = if req.url.path() == "/first" { "{}" } else { r#"{"id":"w1","t":"2024-05-01T10:00:00.5Z"}"# };
        Some(ApiResponse { status: 200, headers: Default::default(), body: body.as_bytes().to_vec().into() })
    }
    fn parse(&self, _q: &Query<'_>, resp: &ApiResponse) -> Result<ApiPage, super::super::api::ShapeError> {
        let v: Value = serde_json::from_slice(&resp.body).unwrap();
        Ok(match v.get("id") {
            None => ApiPage::parsed(Vec::new(), Next::Wait(Duration::from_secs(7), serde_json::json!("job"))),
            Some(_) => ApiPage::parsed(vec![v], Next::Done),
        })
    }
    fn normalise(&self, raw: &Value) -> crate::event::Normalised {
        crate::event::Normalised {
            id: raw["id"].as_str().map(str::to_owned),
            timestamp: raw["t"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.to_utc()),
            ..Default::default()
        }
    }
}

/// A walk that waits for the API's job says so in the source's status
/// (`auditrelay status` shows it) until the poll's outcome is reported.
#[tokio::test(start_paused = true)]
async fn a_walk_waiting_for_the_api_says_so_in_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(State::open(dir.path()).unwrap());
    let now = t("2024-05-01T11:00:00Z");
    let p = poller(state.clone(), "waits", Box::new(WaitsOnce), t("2024-05-01T09:00:00Z"), 10, Arc::new(move || now));
    let report = p.poll_once(&CancellationToken::new()).await.unwrap();
    assert_eq!(report.journaled, 1);
    let st = state.status().get("source", "waits").unwrap().unwrap();
    assert_eq!(st.waiting.as_deref(), Some("the API's job is not ready: waited 7s in 1 step(s)"));
}
