//! The client's side of "a client may retry any request": a reservation or a payment whose
//! outcome is unknown (no answer, 502, 503), or whose body came too slowly (408), is sent
//! again with the same `Idempotency-Key`, and an answer that is clear (201, 400, 404 …) is
//! never retried.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;
use tix_client::ApiClient;

/// A stand-in gateway answering POST /api/orders with `script`'s statuses in turn,
/// recording each request's Idempotency-Key.
async fn gateway(script: Vec<u16>) -> (String, Arc<Mutex<Vec<String>>>) {
    let keys = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(script));
    let (k, sc) = (keys.clone(), script.clone());
    let app = axum::Router::new().route(
        "/api/orders",
        axum::routing::post(move |headers: HeaderMap| {
            let (k, sc) = (k.clone(), sc.clone());
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                k.lock().unwrap().push(key);
                let status = sc.lock().unwrap().remove(0);
                let body = if status == 201 {
                    json!({"expiresAt":"2027-01-15T08:00:00Z","id":"o1","paidAt":null,
                           "status":"created","ticket":{"id":"t1","price":5,"title":"T",
                           "version":0},"userId":"u","version":0})
                } else {
                    json!({"errors":[{"message":format!("status {status}")}]})
                };
                (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, keys)
}

#[tokio::test]
async fn an_unclear_answer_is_retried_with_the_same_key() {
    let (url, keys) = gateway(vec![502, 408, 201]).await;
    let order = ApiClient::new(&url, Some("t".into()))
        .create_order("t1")
        .await
        .unwrap();
    assert_eq!(order.id, "o1");
    let keys = keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 3, "two retries");
    assert!(
        !keys[0].is_empty() && keys.iter().all(|k| *k == keys[0]),
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_clear_answer_is_not_retried_and_each_action_has_its_own_key() {
    let (url, keys) = gateway(vec![400, 201]).await;
    let c = ApiClient::new(&url, Some("t".into()));
    let err = c.create_order("t1").await.unwrap_err();
    assert_eq!(err.to_string(), "status 400");
    c.create_order("t1").await.unwrap();
    let keys = keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 2, "no retry after a 400");
    assert_ne!(keys[0], keys[1], "a new action, a new key");
}

#[tokio::test]
async fn giving_up_after_the_last_try_reports_the_last_answer() {
    let (url, keys) = gateway(vec![503, 503, 503, 503]).await;
    let err = ApiClient::new(&url, None)
        .create_order("t1")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "status 503");
    assert_eq!(keys.lock().unwrap().len(), 4);
}
