//! The gateway between a client and a stand-in service that shows the test the bytes it
//! gets and answers what the test says: what reaches a service, answers that are odd but
//! valid, and stopping with connections open.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use common::*;

/// A stand-in service: for each request on its first connection, sends the request's
/// bytes (head and `Content-Length` body) to the test, waits for the answer to write.
fn stand_in() -> (String, mpsc::Receiver<String>, mpsc::Sender<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (got_tx, got) = mpsc::channel();
    let (answer, answer_rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            while buf.len() < end + 4 + len {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let request: Vec<u8> = buf.drain(..end + 4 + len).collect();
            if got_tx
                .send(String::from_utf8_lossy(&request).into_owned())
                .is_err()
            {
                return;
            }
            let Ok(reply) = answer_rx.recv() else { return };
            if s.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    });
    (addr, got, answer)
}

fn fields(request: &str) -> Vec<(String, String)> {
    let head = request.split("\r\n\r\n").next().unwrap();
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

/// What a service gets is one well-framed request with the gateway's own fields. Tried:
/// a chunked body; `Host`; a client's own `X-Forwarded-For`, `X-Forwarded-Host` and
/// `X-Forwarded-Proto` (claims); hop-by-hop fields (`Keep-Alive`, `TE`,
/// `Proxy-Authorization`) and one a `Connection` field names. The service gets the body
/// with a length, the client's address and the host it asked for, none of the rest. And
/// an answer without a reason phrase or a `Date`, naming a field of its own in
/// `Connection`, reaches the client with both and without that field.
#[test]
fn a_service_gets_one_well_framed_request_with_the_gateways_own_fields() {
    let logs = tempfile::tempdir().unwrap();
    let (service, got, answer) = stand_in();
    let (_gw, url) = gateway(&service, logs.path());
    let mut c = Conn::open(&url);
    c.send(
        "POST /api/tickets?x=1 HTTP/1.1\r\nHost: shop.example\r\n\
         X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil.example\r\n\
         X-Forwarded-Proto: https\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n\
         Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\n\
         Cookie: session=abc\r\nTransfer-Encoding: chunked\r\n\r\n\
         3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    );
    let request = got
        .recv_timeout(WAIT)
        .expect("the request reached the service");
    assert!(
        request.starts_with("POST /api/tickets?x=1 HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(request.ends_with("\r\n\r\nabcde"), "{request}");
    let f = fields(&request);
    let get = |name: &str| -> Vec<&str> {
        f.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(get("host"), [service.as_str()]);
    assert_eq!(get("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(get("x-forwarded-host"), ["shop.example"]);
    assert_eq!(get("x-forwarded-proto"), ["http"]);
    assert_eq!(get("content-length"), ["5"]);
    assert_eq!(get("cookie"), ["session=abc"]);
    assert_eq!(get("x-request-id").len(), 1);
    for gone in [
        "transfer-encoding",
        "connection",
        "x-secret",
        "keep-alive",
        "te",
        "proxy-authorization",
    ] {
        assert!(
            get(gone).is_empty(),
            "{gone} reached the service: {request}"
        );
    }

    answer
        .send("HTTP/1.1 201\r\ncontent-length: 2\r\nconnection: x-internal\r\nx-internal: 1\r\n\r\nok".into())
        .unwrap();
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (201, "ok"));
    assert!(r.header("date").is_some(), "{:?}", r.headers);
    assert!(r.header("x-request-id").is_some(), "{:?}", r.headers);
    assert!(r.header("x-internal").is_none(), "{:?}", r.headers);
}

/// Behind a proxy the gateway trusts (`--trusted-proxy`; the test is that proxy, at
/// 127.0.0.1), each request is stated upstream as coming from the client the proxy saw:
/// the right-most address of its `X-Forwarded-For` that is not a trusted proxy, per
/// request on one connection (a proxy carries many clients' requests on one). Tried: a
/// client's own claim left of the proxy's entry, a chain through another trusted proxy,
/// two fields, a port, garbage, no field at all (the proxy's own address); and a gateway
/// whose trusted proxies do not include the peer, which states the peer.
#[test]
fn a_trusted_proxy_names_each_requests_client() {
    let logs = tempfile::tempdir().unwrap();
    let (service, got, answer) = stand_in();
    let (_gw, url) = gateway_with(
        &service,
        logs.path(),
        &["--trusted-proxy", "127.0.0.1,10.0.0.0/8"],
    );
    let mut c = Conn::open(&url);
    for (sent, client) in [
        ("X-Forwarded-For: 6.6.6.6, 198.51.100.7\r\n", "198.51.100.7"),
        (
            "X-Forwarded-For: 6.6.6.6, 198.51.100.8\r\nX-Forwarded-For: 10.2.3.4\r\n",
            "198.51.100.8",
        ),
        ("X-Forwarded-For: 198.51.100.9:4711\r\n", "198.51.100.9"),
        ("X-Forwarded-For: 198.51.100.9, nonsense\r\n", "127.0.0.1"),
        ("", "127.0.0.1"),
    ] {
        c.send(format!(
            "GET /api/tickets HTTP/1.1\r\nHost: shop.example\r\n{sent}\r\n"
        ));
        let request = got
            .recv_timeout(WAIT)
            .expect("the request reached the service");
        let stated: Vec<(String, String)> = fields(&request)
            .into_iter()
            .filter(|(n, _)| n == "x-forwarded-for")
            .collect();
        assert_eq!(
            stated,
            [("x-forwarded-for".to_string(), client.to_string())],
            "for {sent:?}"
        );
        answer
            .send("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".into())
            .unwrap();
        assert_eq!(c.response().status, 200);
    }
    // A gateway that trusts other proxies only: the test's connection is a client, and
    // its X-Forwarded-For a claim.
    let (service, got, answer) = stand_in();
    let (_gw, url) = gateway_with(&service, logs.path(), &["--trusted-proxy", "10.0.0.0/8"]);
    let mut c = Conn::open(&url);
    c.send("GET /api/tickets HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n");
    let request = got
        .recv_timeout(WAIT)
        .expect("the request reached the service");
    let stated: Vec<String> = fields(&request)
        .into_iter()
        .filter(|(n, _)| n == "x-forwarded-for")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(stated, ["127.0.0.1"]);
    answer
        .send("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".into())
        .unwrap();
    assert_eq!(c.response().status, 200);
}

/// The status line of an answer without a reason phrase is written with the standard
/// one (the gateway once computed the phrase's place from a pointer httparse does not
/// give for an empty phrase).
#[test]
fn an_answer_without_a_reason_phrase_gets_the_standard_one() {
    let logs = tempfile::tempdir().unwrap();
    let (service, got, answer) = stand_in();
    let (_gw, url) = gateway(&service, logs.path());
    let mut c = Conn::open(&url);
    c.send("GET /api/tickets HTTP/1.1\r\nHost: gw\r\n\r\n");
    got.recv_timeout(WAIT).unwrap();
    answer
        .send("HTTP/1.1 404\r\ncontent-length: 0\r\n\r\n".into())
        .unwrap();
    c.want(12).unwrap();
    assert!(
        c.buf.starts_with(b"HTTP/1.1 404 Not Found\r\n"),
        "{:?}",
        String::from_utf8_lossy(&c.buf)
    );
}

/// A gateway told to stop (SIGTERM) while a request is with the service writes that
/// answer, says the connection ends with it (`connection: close`) and closes it, then
/// exits; the client is not left to find a reset under its next request.
#[test]
fn a_stopping_gateway_finishes_the_answer_it_is_on_and_says_the_connection_ends() {
    let logs = tempfile::tempdir().unwrap();
    let (service, got, answer) = stand_in();
    let (mut gw, url) = gateway(&service, logs.path());
    let mut c = Conn::open(&url);
    c.send("GET /api/tickets HTTP/1.1\r\nHost: gw\r\n\r\n");
    got.recv_timeout(WAIT).unwrap();
    gw.signal("TERM");
    // The stop has begun (it is logged), and the answer is still to come.
    let deadline = std::time::Instant::now() + WAIT;
    while !gw.log_text().contains("shutting down") {
        assert!(std::time::Instant::now() < deadline, "{}", gw.log_tail());
        std::thread::sleep(Duration::from_millis(20));
    }
    answer
        .send("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]".into())
        .unwrap();
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "[]"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(c.closes(), "closed");
    assert!(
        gw.terminate(WAIT),
        "the gateway exits once its answer is out"
    );
}

/// A request whose body never comes in full (a declared length, then part of it or
/// nothing) is cut off at the request timeout with 408 (the client's delay; a slow
/// service is 503) and the close, whether it was for the gateway's own paths or for a
/// service, which never hears of it; both are counted in `/metrics`; and a gateway told
/// to stop with such a connection open still exits.
#[test]
fn a_body_that_never_comes_is_408_and_does_not_hold_up_a_stop() {
    let logs = tempfile::tempdir().unwrap();
    let (service, got, _answer) = stand_in();
    let (mut gw, url) = gateway(&service, logs.path());
    for (what, raw) in [
        (
            "own path",
            "POST /nothing HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n\r\n",
        ),
        (
            "forwarded",
            "POST /api/tickets HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n\r\n{\"a\"",
        ),
    ] {
        let mut c = Conn::open(&url);
        c.send(raw);
        let r = c.response();
        assert_eq!(r.status, 408, "{what}: {}", r.text());
        assert_eq!(
            r.json()["errors"][0]["message"],
            "The request body did not arrive in time",
            "{what}"
        );
        assert!(r.header("x-request-id").is_some(), "{what}");
        assert_eq!(c.closes(), "closed", "{what}");
    }
    assert!(got.try_recv().is_err(), "the service never got the request");
    // Both answered at the edge, and still counted: the forwarded one under its upstream,
    // the own path's, which never reached the router, under "unrouted".
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let metrics = get(&url, "/metrics").text();
        let counted = |route: &str| {
            metrics.lines().any(|l| {
                l.starts_with("tix_http_request_duration_seconds_count")
                    && l.contains(&format!("route=\"{route}\""))
                    && l.contains(r#"status="408""#)
            })
        };
        if counted("unrouted") && counted("/api/tickets") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{metrics}");
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut silent = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    silent
        .write_all(b"POST /api/tickets HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n\r\n")
        .unwrap();
    let mut idle = Conn::open(&url);
    idle.send("");
    assert!(gw.terminate(WAIT), "the gateway exits: {}", gw.log_tail());
}

/// A head begun and not finished within `--header-timeout` (slowloris, a stuck client) is
/// answered 408 with the error body and closed, and it shows in the access log and the
/// metrics (route "unparsed"). An idle keep-alive connection that sent nothing is closed
/// without a word, after one answered request as before any.
#[test]
fn a_head_not_finished_in_time_is_408_and_an_idle_connection_just_closes() {
    let logs = tempfile::tempdir().unwrap();
    let (service, got, answer) = stand_in();
    let (gw, url) = gateway_with(&service, logs.path(), &["--header-timeout", "1s"]);

    let mut trickling = Conn::open(&url);
    trickling.send("GET /api/tickets HTTP/1.1\r\nHost: shop.example\r\nX-A: ");
    let idle = Conn::open(&url);
    let mut kept = Conn::open(&url);
    kept.send("GET /api/tickets HTTP/1.1\r\nHost: shop.example\r\n\r\n");
    got.recv_timeout(WAIT)
        .expect("the request reached the service");
    answer
        .send("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".into())
        .unwrap();
    assert_eq!(kept.response().status, 200);

    let r = trickling.response();
    assert_eq!(
        (r.status, r.json()["errors"][0]["message"].as_str()),
        (408, Some("The request head did not arrive in time"))
    );
    let id = r.header("x-request-id").unwrap().to_string();
    assert_eq!(trickling.closes(), "closed");
    for mut quiet in [idle, kept] {
        assert_eq!(quiet.closes(), "closed", "closed, nothing sent");
    }

    let counted = || {
        get(&url, "/metrics").text().lines().any(|l| {
            l.starts_with("tix_http_request_duration_seconds_count")
                && l.contains(r#"route="unparsed""#)
                && l.contains(r#"status="408""#)
        })
    };
    let logged = || {
        gw.log_text().lines().any(|l| {
            l.contains("finished processing request")
                && l.contains(&id)
                && l.contains("method=-")
                && l.contains("status=408")
        })
    };
    until_counted_and_logged(&gw, counted, logged);
}
