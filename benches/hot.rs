//! Micro-benchmarks of the functions every event passes through, on the
//! same ~700-byte audit events and `http_json` source as the end-to-end
//! benchmark, a page of 1,000 at a time (criterion reports events/s):
//!
//! ```sh
//! cargo bench --bench hot              # every group
//! cargo bench --bench hot -- normalise # one group
//! ```
//!
//! `page`: the body cut into the rest and the events' text; `parse`: each
//! event's text into a JSON tree; `parse_wanted`: only what the source's
//! mapping reads of each event into a tree (what the poller does when the
//! event keeps its text and has an id); `normalise`: the vendor mapping and
//! the ECS document's compact text kept in the journal; `journal_append`:
//! one page written to a sled journal with its cursor; `hec_encode`: a
//! batch of journaled events into a HEC body; `hec_gzip`: that body
//! compressed as the HEC output sends it. The allocator is the agent's
//! (jemalloc, with the settings `.cargo/config.toml` builds in).

use auditrelay::event::{self, Event};
use auditrelay::sources::api::{json_body_split, parse_wanted, ApiResponse, Unparsed};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::Value;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "common/payload.rs"]
mod payload;

const PAGE: usize = 1000;

struct Fixture {
    api: Box<dyn auditrelay::sources::api::SourceApi>,
    hec: auditrelay::outputs::splunk_hec::Hec,
    body: ApiResponse,
}

fn fixture() -> Fixture {
    let text = format!(
        "{}\n[[output]]\nname = \"hec\"\ntype = \"splunk_hec\"\nurl = \"http://127.0.0.1:9/\"\ntoken = \"bench\"\n",
        payload::source("bench", "http://127.0.0.1:9")
    );
    let cfg = auditrelay::config::parse(&text).unwrap_or_else(|p| panic!("bench config: {p:?}"));
    let env = auditrelay::settings::secret::ProcessEnv;
    let (api, _) = auditrelay::sources::build_api(&cfg.sources[0].kind, "source[0]", &env).unwrap();
    let o = &cfg.outputs[0];
    let auditrelay::outputs::OutputKind::SplunkHec(hec) = &o.kind else { panic!("bench config: not splunk_hec") };
    let hec = auditrelay::outputs::splunk_hec::Hec::build(hec, &o.common, "output[0]", &env, "bench-host", "c".into())
        .unwrap();
    let body =
        ApiResponse { status: 200, headers: Default::default(), body: payload::page_body(0, PAGE, 2 * PAGE, 0).into() };
    Fixture { api, hec, body }
}

fn events_text(f: &Fixture) -> Unparsed {
    json_body_split(&f.body, "/data/items").unwrap().1.expect("the events array is left as text")
}

fn parsed(f: &Fixture) -> Vec<Value> {
    let text = events_text(f);
    (0..text.len()).map(|i| text.parse(i).unwrap()).collect()
}

/// What a source part does with one event, parsed from `text` (see
/// `poller::normalise_part`).
fn normalise(f: &Fixture, raw: &Value, text: &[u8]) -> Event {
    let n = f.api.normalise(raw);
    event::normalise_text("bench", f.api.observer(), raw, event::as_sent(text), n, chrono::Utc::now())
}

fn hot(c: &mut Criterion) {
    let f = fixture();
    let mut g = c.benchmark_group("event_path");
    g.throughput(Throughput::Elements(PAGE as u64));

    g.bench_function("page", |b| b.iter(|| json_body_split(&f.body, "/data/items").unwrap()));

    let text = events_text(&f);
    g.bench_function("parse", |b| b.iter(|| (0..text.len()).map(|i| text.parse(i).unwrap()).collect::<Vec<_>>()));

    let wanted = f.api.wanted().expect("http_json says what its mapping reads");
    g.bench_function("parse_wanted", |b| {
        b.iter(|| (0..text.len()).map(|i| parse_wanted(text.text(i), wanted).unwrap()).collect::<Vec<_>>())
    });

    let raws = parsed(&f);
    let normalise_all =
        || raws.iter().enumerate().map(|(i, r)| normalise(&f, r, text.text(i)).into_journaled()).collect::<Vec<_>>();
    g.bench_function("normalise", |b| b.iter(normalise_all));

    let dir = tempfile::tempdir().unwrap();
    let state = auditrelay::state::State::open(dir.path()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let journaled: Vec<Event> = normalise_all();
    let cursor = auditrelay::state::Cursor::default();
    g.bench_function("journal_append", |b| {
        b.iter_custom(|pages| {
            let mut took = std::time::Duration::ZERO;
            for _ in 0..pages {
                let start = std::time::Instant::now();
                rt.block_on(state.append("bench", &journaled, &cursor)).unwrap();
                took += start.elapsed();
                // Delivered and collected, untimed: the journal stays the
                // size it has while outputs keep up.
                rt.block_on(state.collect_garbage(&[])).unwrap();
            }
            took
        })
    });

    // The digest every event's manifest window chains (with manifests on,
    // the default for HEC and file outputs).
    g.bench_function("manifest_digest", |b| {
        b.iter(|| journaled.iter().map(auditrelay::manifest::event_digest).filter(|d| d.0[0] == 0).count())
    });

    let refs: Vec<&Event> = journaled.iter().collect();
    g.bench_function("hec_encode", |b| b.iter(|| f.hec.encode(&refs)));
    let body = f.hec.encode(&refs);
    g.bench_function("hec_gzip", |b| b.iter(|| auditrelay::outputs::splunk_hec::gzip_body(&body).unwrap()));
    g.finish();
}

criterion_group!(benches, hot);
criterion_main!(benches);
