//! The gateway's edge, byte by byte: requests written by hand on raw TCP connections, the
//! answers read back by a minimal parser. They pin what any HTTP/1.1 server in front of
//! the services must do, whatever it is built on. A test marked "Hyper (…)" says where
//! the hyper-based gateway did otherwise.

mod common;

use common::*;
use serde_json::json;
use tix_testkit::{ALL, Stack, User};

/// A signed-in seller's `POST /api/tickets`; `framing` (header lines, each ending in
/// CRLF) says how long `body` is.
fn post(framing: &str, body: &str) -> String {
    let token = User::new("wire-seller").token;
    format!(
        "POST /api/tickets HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\n{framing}\r\n{body}"
    )
}

fn ticket_json(title: &str) -> String {
    json!({"title": title, "price": 5}).to_string()
}

/// `body` as one chunk, then the last chunk.
fn one_chunk(body: &str) -> String {
    format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len())
}

/// Puts a ticket on sale; its id.
fn create_ticket(gw: &str, title: &str) -> String {
    let body = ticket_json(title);
    let framing = format!("Content-Length: {}\r\n", body.len());
    let r = once(gw, post(&framing, &body));
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

/// How many tickets have `word` in their title.
fn tickets_titled(gw: &str, word: &str) -> usize {
    let r = get(gw, &format!("/api/tickets?q={word}"));
    assert_eq!(r.status, 200);
    r.json().as_array().unwrap().len()
}

/// Tickets behind the gateway (auth is not needed: the seller's token is minted).
fn start() -> (Stack, String) {
    let stack = Stack::start(&["tickets", "gateway"]);
    let gw = stack.url("gateway");
    (stack, gw)
}

/// Two GETs written in one go on one connection (an existing ticket, then an unknown id):
/// two answers come back on it, in order, 200 then 404 with the error body. A client
/// that pipelines would otherwise get answers swapped, lost or merged.
#[test]
fn pipelined_gets_are_answered_in_order_on_their_connection() {
    let (_stack, gw) = start();
    let id = create_ticket(&gw, "Pipelined");
    let mut c = Conn::open(&gw);
    c.send(get_raw(&format!("/api/tickets/{id}"), "") + &get_raw("/api/tickets/unknown", ""));
    let first = c.response();
    assert_eq!(first.titled(), (200, json!("Pipelined")));
    let second = c.response();
    assert_eq!((second.status, second.text().as_str()), (404, NOT_FOUND));
}

/// A signed-in creation whose body comes in three chunks (one with a chunk extension)
/// creates the ticket; a chunked body over the 64 KiB limit is refused with 413 and the
/// connection closed after it (the rest of that body is never read as a request). A
/// client that streams its body can sell; one that streams too much is told so.
#[test]
fn a_chunked_body_is_forwarded_and_one_over_the_limit_is_413_and_closed() {
    let (_stack, gw) = start();
    let chunked =
        "11\r\n{\"title\":\"Chunked\r\nb;name=value\r\n wire\",\"pri\r\n6\r\nce\":7}\r\n0\r\n\r\n";
    let r = once(&gw, post("Transfer-Encoding: chunked\r\n", chunked));
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let r = get(&gw, &format!("/api/tickets/{id}"));
    assert_eq!(r.titled(), (200, json!("Chunked wire")));

    let big = ticket_json(&"x".repeat(70 * 1024));
    let mut chunked: String = (big.as_bytes().chunks(8 * 1024))
        .map(|c| format!("{:x}\r\n{}\r\n", c.len(), String::from_utf8_lossy(c)))
        .collect();
    chunked.push_str("0\r\n\r\n");
    let mut c = Conn::open(&gw);
    c.send(post("Transfer-Encoding: chunked\r\n", &chunked));
    assert_eq!(c.response().status, 413);
    assert_eq!(c.closes(), "closed", "after a 413");
}

/// A declared Content-Length of 200000 (over the 64 KiB limit) is refused with 413 from
/// the head alone: the client sends no body and gets its answer anyway, then the close.
/// An upload that is too big is refused before the user waits for it to go up.
// Hyper (the gateway before its own edge, 2026-11-27): hyper's gateway waits for the body: nothing for 30 s, then (the request
// timeout) `503` "The request took too long", and the close. 413 only once more than
// 64 KiB of body has arrived.
#[test]
fn a_declared_length_over_the_limit_is_413_without_the_body_and_closed() {
    let (_stack, gw) = start();
    let mut c = Conn::open(&gw);
    c.send(post("Content-Length: 200000\r\n", ""));
    assert_eq!(c.response().status, 413);
    assert_eq!(c.closes(), "closed", "after a 413");
}

/// Transfer-Encoding: chunked together with a Content-Length, in either order: the two
/// framings disagree about where the request ends (the classic smuggling vector), so the
/// request is refused with 400, the connection closed, and nothing is created. Otherwise
/// bytes one hop reads as a body, the next could read as another user's request.
// Hyper (the gateway before its own edge, 2026-11-27): hyper takes the chunked framing and ignores Content-Length: 201 (the ticket
// is created) with `connection: close`, then the close.
#[test]
fn transfer_encoding_with_content_length_is_400_and_closed() {
    let (_stack, gw) = start();
    let body = ticket_json("SmuggledTeCl");
    let (n, chunked) = (body.len(), one_chunk(&body));
    let m = chunked.len();
    for framing in [
        format!("Transfer-Encoding: chunked\r\nContent-Length: {n}\r\n"),
        format!("Content-Length: {m}\r\nTransfer-Encoding: chunked\r\n"),
    ] {
        let end = refusal(&gw, post(&framing, &chunked));
        assert_eq!(end, End::Closed(Some(400)), "{framing:?}");
    }
    assert_eq!(tickets_titled(&gw, "SmuggledTeCl"), 0);
}

/// Content-Length given twice with different values, or not plain digits (`+N`, `-1`,
/// a list `N, N+1`): each is refused with 400 and the close; nothing is created (no
/// ticket from a request whose end two readers could place differently).
#[test]
fn conflicting_or_malformed_content_lengths_are_400_and_closed() {
    let (_stack, gw) = start();
    let body = ticket_json("SmuggledCl");
    let n = body.len();
    for framing in [
        format!("Content-Length: {n}\r\nContent-Length: {}\r\n", n + 1),
        format!("Content-Length: +{n}\r\n"),
        "Content-Length: -1\r\n".into(),
        format!("Content-Length: {n}, {}\r\n", n + 1),
    ] {
        let end = refusal(&gw, post(&framing, &body));
        assert_eq!(end, End::Closed(Some(400)), "{framing:?}");
    }
    assert_eq!(tickets_titled(&gw, "SmuggledCl"), 0);
}

/// Transfer codings other than `chunked` alone (`identity`; `gzip, chunked`): the gateway
/// cannot pass them on faithfully, so each is refused (400 or 501) with the close, and
/// nothing is created (no ticket from a body the service may read differently).
// Hyper (the gateway before its own edge, 2026-11-27): `identity` is 400 and the close; `gzip, chunked` is read as chunked and
// forwarded: 201 (the ticket is created), the connection kept open.
#[test]
fn transfer_codings_other_than_chunked_are_refused_and_closed() {
    let (_stack, gw) = start();
    let body = ticket_json("SmuggledCoding");
    let n = body.len();
    let identity = format!("Transfer-Encoding: identity\r\nContent-Length: {n}\r\n");
    for (framing, body) in [
        (identity.as_str(), body.clone()),
        ("Transfer-Encoding: gzip, chunked\r\n", one_chunk(&body)),
    ] {
        let end = refusal(&gw, post(framing, &body));
        let refused = matches!(end, End::Closed(Some(400 | 501)));
        assert!(refused, "{framing:?}: {end:?}");
    }
    assert_eq!(tickets_titled(&gw, "SmuggledCoding"), 0);
}

/// A header continued on the next line (obs-fold, a line starting with a space) is
/// refused with 400 and the close; nothing is created (a hidden header never reaches
/// the service).
#[test]
fn an_obs_folded_header_is_400_and_closed() {
    let (_stack, gw) = start();
    let body = ticket_json("SmuggledFold");
    let framing = format!("X-Folded: a\r\n b\r\nContent-Length: {}\r\n", body.len());
    assert_eq!(refusal(&gw, post(&framing, &body)), End::Closed(Some(400)));
    assert_eq!(tickets_titled(&gw, "SmuggledFold"), 0);
}

/// A request head over 64 KiB (one 100 KB header) is refused with 431 and the close, not
/// passed on: a client cannot make the gateway hold or forward huge heads.
// Hyper (the gateway before its own edge, 2026-11-27): hyper's head limit is ~400 KB: forwarded, 200, the connection kept open.
#[test]
fn a_head_over_64_kib_is_431_and_closed() {
    let (_stack, gw) = start();
    let big = format!("X-Big: {}\r\n", "x".repeat(100_000));
    assert_eq!(
        refusal(&gw, get_raw("/api/tickets", &big)),
        End::Closed(Some(431))
    );
}

/// 200 small headers are refused with 431 and the close: a clear answer, not a request
/// the service may choke on.
#[test]
fn two_hundred_headers_are_431_and_closed() {
    let (_stack, gw) = start();
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let end = refusal(&gw, get_raw("/api/tickets", &many));
    assert_eq!(end, End::Closed(Some(431)));
}

/// Whether `end` refuses garbage: a 4xx (or 505, for an unknown version) then the close,
/// or the close without an answer.
fn refused_garbage(end: &End) -> bool {
    matches!(end, End::Closed(None | Some(400..=499 | 505)))
}

/// Garbage, each on its own connection (binary bytes, NULs, a request line without a
/// version, HTTP/9.9, a path with a space, one with a raw non-ASCII byte), then 100
/// pseudo-random byte strings (xorshift, fixed seed) each ended by CRLFCRLF so the head
/// is complete: each gets a 4xx and the close, or just the close, never a wait; then the
/// gateway serves a normal GET as before. A scanner or broken client neither ties up
/// connections nor disturbs other users.
#[test]
fn garbage_is_refused_and_the_gateway_serves_on() {
    let (_stack, gw) = start();
    let mut cases: Vec<Vec<u8>> = vec![
        (0..=255u8).rev().collect(),
        vec![0; 64],
        b"GET /api/tickets\r\n\r\n".to_vec(),
        b"GET /api/tickets HTTP/9.9\r\nHost: gw\r\n\r\n".to_vec(),
        b"GET /api/tic kets HTTP/1.1\r\nHost: gw\r\n\r\n".to_vec(),
        b"GET /api/tickets/\xff HTTP/1.1\r\nHost: gw\r\n\r\n".to_vec(),
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..100 {
        let len = 1 + (next() % 300) as usize;
        let mut raw: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        raw.extend_from_slice(b"\r\n\r\n");
        cases.push(raw);
    }
    for raw in cases {
        let (end, what) = (refusal(&gw, &raw), String::from_utf8_lossy(&raw));
        assert!(refused_garbage(&end), "{what:?}: {end:?}");
    }
    assert_eq!(get(&gw, "/api/tickets").status, 200);
}

/// Lone CRs as line endings (`HTTP/1.1\rHost: gw\r\r`) get a 4xx or the close, not a
/// connection held open for a line end that never comes (each one held is a socket and
/// memory a flood of them would exhaust); the gateway serves on.
// Hyper (the gateway before its own edge, 2026-11-27): hyper answers nothing and keeps the connection open indefinitely (after a
// partial first read it only parses again once CRLFCRLF or LFLF has arrived, and it has
// no header timeout).
#[test]
fn lone_cr_line_endings_are_refused_not_waited_on() {
    let (_stack, gw) = start();
    let end = refusal(&gw, "GET /api/tickets HTTP/1.1\rHost: gw\r\r");
    assert!(refused_garbage(&end), "{end:?}");
    assert_eq!(get(&gw, "/api/tickets").status, 200);
}

/// 50 connections that send nothing, one that sends half a head and goes, one that
/// declares 1000 bytes of body, sends 10 and goes: a fresh connection's GET is still
/// answered (200) while the 50 stay open: idle or dead clients never hold up the users.
#[test]
fn silent_and_vanishing_clients_do_not_hold_up_others() {
    let (_stack, gw) = start();
    let silent: Vec<Conn> = (0..50).map(|_| Conn::open(&gw)).collect();
    Conn::open(&gw).send("GET /api/tickets HTTP/1.1\r\nHo");
    Conn::open(&gw).send(post("Content-Length: 1000\r\n", "{\"title\":\""));
    let r = get(&gw, "/api/tickets");
    assert_eq!(r.status, 200, "{}", r.text());
    drop(silent);
}

/// `Expect: 100-continue` on a signed-in creation: the client reads
/// `HTTP/1.1 100 Continue` before it sends the body, then gets 201. Clients like curl
/// send `Expect` for bigger bodies; without the 100 they stall before sending.
#[test]
fn expect_100_continue_gets_continue_before_the_body_then_201() {
    let (_stack, gw) = start();
    let body = ticket_json("Expected");
    let mut c = Conn::open(&gw);
    let framing = format!("Expect: 100-continue\r\nContent-Length: {}\r\n", body.len());
    c.send(post(&framing, ""));
    assert_eq!(c.response().status, 100);
    c.send(&body);
    let r = c.response();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(tickets_titled(&gw, "Expected"), 1);
}

/// An HTTP/1.0 GET without keep-alive gets its answer, then the close; an HTTP/1.1 GET
/// with `Connection: close` gets an answer saying `connection: close`, then the close.
/// Clients that read until the connection ends would otherwise hang.
#[test]
fn http_1_0_and_connection_close_end_the_connection_after_the_answer() {
    let (_stack, gw) = start();
    let mut c = Conn::open(&gw);
    c.send("GET /api/tickets HTTP/1.0\r\nHost: gw\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "[]"));
    assert_eq!(c.closes(), "closed", "after an HTTP/1.0 answer");

    let mut c = Conn::open(&gw);
    c.send(get_raw("/api/tickets", "Connection: close\r\n"));
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "[]"));
    let connection = r.header("connection").map(str::to_ascii_lowercase);
    assert_eq!(connection.as_deref(), Some("close"));
    assert_eq!(c.closes(), "closed", "after `Connection: close`");
}

/// An HTTP/1.1 request without `Host` gets 400 saying so, then the close (RFC 9112
/// §3.2); an HTTP/1.0 one, from before Host existed, is served.
#[test]
fn an_http_1_1_request_without_a_host_is_refused() {
    let (_stack, gw) = start();
    let mut c = Conn::open(&gw);
    c.send("GET /api/tickets HTTP/1.1\r\nAccept: */*\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errors"][0]["message"], json!("Missing Host"));
    assert!(
        r.header("x-request-id").is_some(),
        "a refusal has an id too"
    );
    assert_eq!(c.closes(), "closed");

    let mut c = Conn::open(&gw);
    c.send("GET /api/tickets HTTP/1.0\r\n\r\n");
    assert_eq!(c.response().status, 200);
}

/// An HTTP/1.0 client that names no host is served, and auth, which cannot tell where it
/// was reached (the gateway states no `X-Forwarded-Host` it was not given), makes its
/// session cookie `Secure`; the same sign-up asked for as `localhost` gets a plain one.
#[test]
fn a_sign_up_over_http_1_0_without_a_host_gets_a_secure_cookie() {
    let stack = Stack::start(&["auth", "gateway"]);
    let gw = stack.url("gateway");
    let signup = |host: &str, email: &str| {
        let body = json!({"email": email, "password": "password1"}).to_string();
        let mut c = Conn::open(&gw);
        c.send(format!(
            "POST /api/users/signup HTTP/1.0\r\n{host}Content-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ));
        let r = c.response();
        assert_eq!(r.status, 201, "{}", r.text());
        r.header("set-cookie")
            .expect("a session cookie")
            .to_string()
    };
    let nameless = signup("", "nohost@x.io");
    assert!(nameless.ends_with("; Secure"), "{nameless}");
    let local = signup("Host: localhost:8080\r\n", "local@x.io");
    assert!(!local.contains("Secure"), "{local}");
}

/// A request whose head is refused before routing (here: two Hosts) is logged and counted
/// all the same: an access log line with its status and id, and `/metrics` counts it under
/// the route "unparsed". A flood of malformed requests shows in both. A 501 for a transfer
/// coding the gateway does not decode is the client's doing: no "response failed" line.
#[test]
fn a_refused_head_is_in_the_access_log_and_the_metrics() {
    let (mut stack, gw) = start();
    let refused = |raw: &str, status: u16| {
        let mut c = Conn::open(&gw);
        c.send(raw);
        let r = c.response();
        assert_eq!(r.status, status, "{raw:?}");
        r.header("x-request-id").unwrap().to_string()
    };
    let id = refused(
        "GET /api/tickets HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
    );
    let coding = refused(
        "POST /api/tickets HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
    );

    // Logged and counted once its answer is written, a moment after the client has it.
    let gateway = &stack.service("gateway").proc;
    let counted = || {
        let metrics = get(&gw, "/metrics").text();
        ["400", "501"].iter().all(|status| {
            metrics.lines().any(|l| {
                l.starts_with("tix_http_request_duration_seconds_count")
                    && l.contains(r#"route="unparsed""#)
                    && l.contains(r#"method="OTHER""#)
                    && l.contains(&format!(r#"status="{status}""#))
            })
        })
    };
    let logged = || {
        let log = gateway.log_text();
        let finished = |id: &str, status: &str| {
            log.lines().any(|l| {
                l.contains("finished processing request")
                    && l.contains(id)
                    && l.contains("method=-")
                    && l.contains(status)
            })
        };
        finished(&id, "status=400") && finished(&coding, "status=501")
    };
    until_counted_and_logged(gateway, counted, logged);
    let log = gateway.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(&coding)).collect();
    assert!(
        !lines.iter().any(|l| l.contains("response failed")),
        "{lines:?}"
    );
}

/// HEAD of a ticket: 200, a content-length equal to the GET body's, no body bytes (a GET
/// on the same connection afterwards is answered correctly, not garbled by them).
#[test]
fn head_has_the_get_length_and_no_body_and_the_connection_goes_on() {
    let (_stack, gw) = start();
    let path = format!("/api/tickets/{}", create_ticket(&gw, "Headed"));
    let mut c = Conn::open(&gw);
    c.send(format!("HEAD {path} HTTP/1.1\r\nHost: gw\r\n\r\n"));
    let head = c.try_response(true).unwrap();
    c.send(get_raw(&path, ""));
    let r = c.response();
    assert_eq!(r.titled(), (200, json!("Headed")));
    let len = r.body.len().to_string();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(len.as_str()));
}

/// A client's plain `x-request-id` comes back unchanged (forwarded, or answered by the
/// gateway itself); one too long (300 characters) or with a space is replaced. A user's
/// id finds their request in the logs; a hostile one cannot spoil the log lines.
#[test]
fn a_plain_request_id_comes_back_and_an_unusable_one_is_replaced() {
    let (_stack, gw) = start();
    for path in ["/api/tickets", "/api/nothing"] {
        let r = once(&gw, get_raw(path, "x-request-id: abc-123\r\n"));
        assert_eq!(r.header("x-request-id"), Some("abc-123"), "{path}");
        for bad in ["a".repeat(300), "abc 123".into()] {
            let r = once(&gw, get_raw(path, &format!("x-request-id: {bad}\r\n")));
            let id = r.header("x-request-id").unwrap_or_default();
            let replaced = !id.is_empty() && id != bad && !id.contains(' ');
            assert!(replaced, "{path}: {id}");
        }
    }
}

/// A client connection used before tickets restarts (kill -9, started again on its port)
/// is used again after: the GET on it is answered 200, not 502 — the gateway notices its
/// old upstream connection is dead and opens another. Users see no 502 after a service
/// restarts or is redeployed.
#[test]
fn a_kept_alive_client_connection_works_across_an_upstream_restart() {
    let (mut stack, gw) = start();
    let path = format!("/api/tickets/{}", create_ticket(&gw, "Restarted"));
    let request = get_raw(&path, "");
    let mut c = Conn::open(&gw);
    c.send(&request);
    assert_eq!(c.response().status, 200);
    stack.restart("tickets");
    for _ in 0..2 {
        c.send(&request);
        assert_eq!(c.response().titled(), (200, json!("Restarted")));
    }
}

/// Paths no service owns are 404 with the error body through a raw socket too, on one
/// kept-alive connection; `GET /healthz` with every service up is 200 with JSON (what
/// monitoring and load balancers read).
#[test]
fn unknown_paths_are_404_and_healthz_is_200_json() {
    let stack = Stack::start(&ALL);
    let gw = stack.url("gateway");
    let mut c = Conn::open(&gw);
    for path in ["/api/nothing", "/", "/api/ticketsX"] {
        c.send(get_raw(path, ""));
        let r = c.response();
        assert_eq!((r.status, r.text().as_str()), (404, NOT_FOUND), "{path}");
    }
    let r = get(&gw, "/healthz");
    let json_type = r.header("content-type").unwrap_or_default();
    assert!(json_type.starts_with("application/json"), "{json_type}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["service"], "gateway");
}

/// A target in absolute form (`GET http://host/api/tickets/<id>`, as a client talking to
/// a proxy writes it) reaches the service by its path, as the origin form does.
#[test]
fn an_absolute_form_target_is_routed_by_its_path() {
    let (_stack, gw) = start();
    let id = create_ticket(&gw, "Absolute");
    let r = get(&gw, &format!("http://shop.example/api/tickets/{id}"));
    assert_eq!(r.titled(), (200, json!("Absolute")));
}

/// A head sent a byte at a time, 3 KB of it (past the length the gateway parses on every
/// read), is answered once its empty line arrives, split across two writes or not.
#[test]
fn a_head_trickled_a_byte_at_a_time_is_answered() {
    let (_stack, gw) = start();
    let id = create_ticket(&gw, "Trickled");
    let raw = get_raw(
        &format!("/api/tickets/{id}"),
        &format!("X-Padding: {}\r\n", "p".repeat(3000)),
    );
    let mut c = Conn::open(&gw);
    for byte in raw.as_bytes() {
        c.send([*byte]);
    }
    assert_eq!(c.response().titled(), (200, json!("Trickled")));
}

/// A client that sends a 200 KB body at once, without waiting (no `Expect`), still reads
/// the 413 whole: the gateway reads and drops what follows for a moment before closing,
/// where a close with unread data would have the kernel reset the connection under the
/// answer.
#[test]
fn an_eager_client_over_the_limit_reads_its_413() {
    let (_stack, gw) = start();
    let body = "x".repeat(200_000);
    let framing = format!("Content-Length: {}\r\n", body.len());
    let mut c = Conn::open(&gw);
    let mut writer = c.stream.try_clone().unwrap();
    let request = post(&framing, &body);
    let sending = std::thread::spawn(move || {
        use std::io::Write;
        let _ = writer.write_all(request.as_bytes());
    });
    let r = c.response();
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.header("connection"), Some("close"));
    sending.join().unwrap();
}

/// Empty lines before a request line are skipped (RFC 9112 §2.2), and a stream of them
/// alone ends in the head's limit, not in a parse per read.
#[test]
fn empty_lines_before_a_request_are_skipped() {
    let (_stack, gw) = start();
    let id = create_ticket(&gw, "Blank lines");
    let r = once(
        &gw,
        format!("\r\n\n\r\n{}", get_raw(&format!("/api/tickets/{id}"), "")),
    );
    assert_eq!(r.titled(), (200, json!("Blank lines")));
}
