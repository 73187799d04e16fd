//! `docs/openapi.json` is what the code generates, and the gateway serves it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

/// `TIX_UPDATE_OPENAPI=1 cargo test -p tix-openapi` writes the file; without it, a
/// difference fails with the way to update it.
#[test]
fn docs_openapi_json_is_current() {
    let generated = tix_openapi::to_json();
    let path = committed_path();
    if std::env::var_os("TIX_UPDATE_OPENAPI").is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::write(&path, &generated).expect("writing docs/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "docs/openapi.json is out of date (first difference at line {}: committed {:?}, generated {:?}).\n\
             Run `TIX_UPDATE_OPENAPI=1 cargo test -p tix-openapi` and commit docs/openapi.json \
             (then rebuild the gateway, which embeds it).",
            first + 1,
            committed.lines().nth(first).unwrap_or("<end of file>"),
            generated.lines().nth(first).unwrap_or("<end of file>"),
        );
    }
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            ops.push((path.clone(), method.clone(), op));
        }
    }
    ops
}

/// Every route of every service, with an id, a success and the errors every route can
/// answer; security that names a declared scheme.
#[test]
fn every_route_is_documented_with_its_answers() {
    let doc: Value = serde_json::from_str(&tix_openapi::to_json()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let routes: BTreeSet<String> = operations(&doc)
        .iter()
        .map(|(path, method, _)| format!("{} {path}", method.to_uppercase()))
        .collect();
    let expected: BTreeSet<String> = [
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /api/openapi.json",
        "POST /api/users/signup",
        "POST /api/users/signin",
        "POST /api/users/signout",
        "POST /api/users/renew",
        "GET /api/users/currentuser",
        "GET /api/tickets",
        "POST /api/tickets",
        "GET /api/tickets/{id}",
        "PUT /api/tickets/{id}",
        "GET /api/orders",
        "POST /api/orders",
        "GET /api/orders/sales",
        "GET /api/orders/{id}",
        "DELETE /api/orders/{id}",
        "GET /api/payments",
        "POST /api/payments",
        "GET /api/payments/{id}",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(routes, expected);

    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    let mut ids = BTreeSet::new();
    for (path, method, op) in operations(&doc) {
        let what = format!("{method} {path}");
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no operationId"));
        assert!(ids.insert(id.to_string()), "{what}: operationId {id} twice");
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{what}: no success"
        );
        assert!(responses.contains_key("500"), "{what}: no 500");
        if path.starts_with("/api/") && path != "/api/openapi.json" {
            assert!(responses.contains_key("502"), "{what}: no 502");
            assert!(responses.contains_key("503"), "{what}: no 503");
        }
        if op.get("requestBody").is_some() {
            assert!(responses.contains_key("400"), "{what}: no 400");
            assert!(responses.contains_key("413"), "{what}: no 413");
            assert!(responses.contains_key("408"), "{what}: no 408");
        }
        for (status, r) in responses {
            // The document itself (JSON, any shape) and the metrics (Prometheus text).
            let not_json = matches!(path.as_str(), "/api/openapi.json" | "/metrics");
            if status != "204" && !(not_json && status == "200") {
                assert!(
                    r["content"]["application/json"]["schema"].is_object(),
                    "{what} {status}: no JSON body"
                );
            }
        }
        let security = op["security"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: no security"));
        for requirement in security {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(
                    schemes.contains_key(scheme),
                    "{what}: unknown scheme {scheme}"
                );
            }
        }
        let signed_in = !security.iter().any(|r| r.as_object().unwrap().is_empty());
        if signed_in {
            assert!(responses.contains_key("401"), "{what}: signed in, no 401");
        }
    }
}

/// The wire forms serde gives `Money` and `UnixMillis`, and the error body.
#[test]
fn money_is_a_number_instants_are_rfc3339_and_errors_have_one_shape() {
    let doc: Value = serde_json::from_str(&tix_openapi::to_json()).unwrap();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["Money"]["type"], "number");
    assert_eq!(schemas["UnixMillis"]["type"], "string");
    assert_eq!(schemas["UnixMillis"]["format"], "date-time");
    let price = &schemas["TicketDraft"]["properties"]["price"]["oneOf"];
    let kinds: Vec<&Value> = price
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["type"])
        .collect();
    assert_eq!(kinds, ["number", "string"]);
    assert_eq!(
        schemas["ErrorBody"]["required"],
        serde_json::json!(["errors"])
    );
    assert_eq!(
        schemas["FieldError"]["required"],
        serde_json::json!(["message"])
    );
}

/// The gateway serves the committed document at `/api/openapi.json`, as JSON, with every
/// path of the generated one.
#[tokio::test]
async fn the_gateway_serves_the_document() {
    use clap::Parser;
    // No upstream is needed: the document is the gateway's own.
    let cfg = tix_gateway::Config::parse_from([
        "tix-gateway",
        "--port",
        "0",
        "--auth-url",
        "http://127.0.0.1:9",
        "--tickets-url",
        "http://127.0.0.1:9",
        "--orders-url",
        "http://127.0.0.1:9",
        "--payments-url",
        "http://127.0.0.1:9",
        "--expiration-url",
        "",
    ]);
    let service = tix_gateway::build(cfg).await.unwrap();
    let addr = service.addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(service.run_until_stopped(async {
        stopped.await.ok();
    }));

    let r = reqwest::get(format!("http://{addr}/api/openapi.json"))
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(r.headers().get("x-request-id").is_some());
    let served: Value = r.json().await.unwrap();
    let generated: Value = serde_json::from_str(&tix_openapi::to_json()).unwrap();
    let paths = |d: &Value| -> BTreeSet<String> {
        d["paths"].as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(paths(&served), paths(&generated));
    assert_eq!(
        served, generated,
        "the gateway serves an old document: run `TIX_UPDATE_OPENAPI=1 cargo test -p tix-openapi`"
    );

    stop.send(()).ok();
    running.await.unwrap().unwrap();
}
