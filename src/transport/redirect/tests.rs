use super::*;
use crate::transport::origin::Origins;
use axum::extract::{Request, State};
use axum::http::StatusCode as Status;
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a fake server saw: method, path, body, `Authorization`.
type Seen = Arc<Mutex<Vec<(String, String, String, Option<String>)>>>;

/// A server whose `/to/<status>/<path>` answers that redirect status to
/// `/<path>` (or to `elsewhere/<path>` under `/far/`), `/loop` redirects
/// to itself and anything else answers 200 "ok".
async fn server(elsewhere: Option<String>) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new().fallback(handle).with_state((seen.clone(), elsewhere));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

async fn handle(State((seen, elsewhere)): State<(Seen, Option<String>)>, req: Request) -> Response {
    let (method, path) = (req.method().to_string(), req.uri().path().to_owned());
    let auth = req.headers().get("authorization").map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap();
    seen.lock().unwrap().push((method, path.clone(), String::from_utf8_lossy(&body).into_owned(), auth));
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(3, '/').collect();
    let redirect =
        |status: u16, to: String| (Status::from_u16(status).unwrap(), [("location", to)], "").into_response();
    match parts.as_slice() {
        ["to", status, rest] => redirect(status.parse().unwrap(), format!("/{rest}")),
        ["far", rest] => redirect(302, format!("{}/{rest}", elsewhere.clone().unwrap_or_default())),
        ["loop"] => redirect(302, "/loop".into()),
        ["nowhere"] => (Status::FOUND, "").into_response(),
        _ => (Status::OK, "ok").into_response(),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn within(base: &str, also: &[&str]) -> Redirects {
    let base = url::Url::parse(base).unwrap();
    let also: Vec<url::Url> = also.iter().map(|u| url::Url::parse(u).unwrap()).collect();
    Redirects::Within(Origins::pinned(Some(&base), &also))
}

async fn post(url: &str, redirects: &Redirects) -> Result<reqwest::Response, SendError> {
    let req = client()
        .post(url)
        .bearer_auth("tok")
        .header("content-type", "application/json")
        .body("{\"q\":1}")
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    send(&client(), req, redirects).await
}

/// 301/302/303 turn a POST into a GET without its body; 307/308 repeat it.
#[tokio::test]
async fn methods_and_bodies_follow_the_status_as_reqwest_does() {
    let (base, seen) = server(None).await;
    let rules = within(&base, &[]);
    for (status, method, body) in
        [(301, "GET", ""), (302, "GET", ""), (303, "GET", ""), (307, "POST", "{\"q\":1}"), (308, "POST", "{\"q\":1}")]
    {
        seen.lock().unwrap().clear();
        let resp = post(&format!("{base}/to/{status}/done"), &rules).await.unwrap();
        assert_eq!(resp.status(), 200);
        let seen = seen.lock().unwrap();
        let last = seen.last().unwrap();
        assert_eq!((last.0.as_str(), last.1.as_str(), last.2.as_str()), (method, "/done", body), "{status}");
        assert_eq!(last.3.as_deref(), Some("Bearer tok"), "same origin: the credentials stay");
    }
}

/// A redirect to an origin the source does not have is refused before
/// anything is sent there; one the operator allowed is followed without
/// the `Authorization` header, as reqwest did.
#[tokio::test]
async fn another_origin_gets_nothing_unless_allowed_and_then_no_authorization() {
    let (other, other_seen) = server(None).await;
    let (base, _) = server(Some(other.clone())).await;
    let refused = post(&format!("{base}/far/steal"), &within(&base, &[])).await.unwrap_err();
    let SendError::Refused(r) = refused else { panic!("not refused: {refused:?}") };
    assert_eq!((r.origin.as_str(), r.why), (other.as_str(), "not the configured origin"));
    assert!(other_seen.lock().unwrap().is_empty(), "the other origin was asked");

    let resp = post(&format!("{base}/far/page"), &within(&base, &[&other])).await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen = other_seen.lock().unwrap();
    assert_eq!((seen[0].0.as_str(), seen[0].1.as_str(), seen[0].3.as_deref()), ("GET", "/page", None));
}

/// `Refuse` follows nothing; a loop ends after [`MAX_REDIRECTS`]; a
/// redirect without `Location` is the answer.
#[tokio::test]
async fn refuse_loops_and_redirects_without_location() {
    let (base, seen) = server(None).await;
    let err = post(&format!("{base}/to/307/x"), &Redirects::Refuse).await.unwrap_err();
    assert!(matches!(err, SendError::Refused(ref r) if r.why.contains("never redirected")), "{err:?}");
    assert_eq!(seen.lock().unwrap().len(), 1);

    seen.lock().unwrap().clear();
    let err = post(&format!("{base}/loop"), &within(&base, &[])).await.unwrap_err();
    assert!(matches!(err, SendError::Refused(ref r) if r.why == "too many redirects"), "{err:?}");
    assert_eq!(seen.lock().unwrap().len(), crate::transport::origin::MAX_REDIRECTS + 1);

    let resp = post(&format!("{base}/nowhere"), &within(&base, &[])).await.unwrap();
    assert_eq!(resp.status(), 302);
}
