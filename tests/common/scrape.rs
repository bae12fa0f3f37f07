//! Reading `/metrics` the way Prometheus does: a real HTTP/1.1 GET, the
//! text parsed by `prometheus-parse`.

use std::net::SocketAddr;

use super::PATIENCE;

/// `/metrics`, parsed.
pub async fn scrape_metrics(addr: SocketAddr) -> prometheus_parse::Scrape {
    let (_, text) = http_get(addr, "/metrics").await;
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// GETs `path` over a fresh HTTP/1.1 connection; the content type and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .expect("HTTP/1.1 handshake");
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(PATIENCE, sender.send_request(request))
        .await
        .expect("an answer in time")
        .expect("an HTTP response");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()[hyper::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        content_type,
        String::from_utf8(body.to_vec()).expect("UTF-8"),
    )
}

/// The value of the one sample of `metric` whose labels include `labels`.
pub fn sample(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {metric}{labels:?} in {:#?}",
        scrape.samples
    );
    match &found[0].value {
        prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => *v,
        other => panic!("{metric} is not a counter or gauge: {other:?}"),
    }
}
