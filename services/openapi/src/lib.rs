//! The whole HTTP API as one OpenAPI 3.1 document: `docs/openapi.json`, which the gateway
//! serves at `GET /api/openapi.json`.
//!
//! Each service documents its own endpoints with `#[utoipa::path]` on the real handlers and
//! routes them through the same `OpenApiRouter` (`tix_auth::openapi()`, …), so an endpoint
//! cannot be served without being documented. This crate merges those parts with what is
//! true of every endpoint and that no handler says: the security schemes, the errors the
//! shared layers answer (408, 413, 500, the 503 of a timeout) and the gateway's 502, and
//! the links that lead from one answer to the next request (a ticket to its order, an
//! order to its payment) for a stateful fuzzer.
//!
//! The gateway does not depend on the services (it would pull SQLite and argon2 into it): it
//! embeds the committed file, and this crate's test fails when that file is out of date
//! (`TIX_UPDATE_OPENAPI=1 cargo test -p tix-openapi` writes it).

use serde_json::{Value, json};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    Components, ContentBuilder, InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, Ref, RefOr,
    Response, ResponseBuilder, Server, Tag,
};

use tix_api::openapi::{BEARER, SESSION_COOKIE};

/// The document, as `docs/openapi.json` holds it.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(merged()).expect("the document serializes");
    add_links(&mut doc);
    doc
}

/// Every service's part, with what is true of all of them.
fn merged() -> OpenApi {
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("tix")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "A ticket marketplace: people sell tickets, others reserve one (an order \
                     holds it for 15 minutes) and pay for it. Every route is served by the \
                     gateway. Errors always have the shape `{\"errors\":[{\"message\",\"field\"?}]}`; \
                     every response carries `x-request-id`. The rules a schema cannot say \
                     (rate limits, retries with `Idempotency-Key`, what each event does) are in \
                     docs/api.md.",
                ))
                .license(Some(LicenseBuilder::new().name("MIT").build())),
        )
        .servers(Some([Server::new("/")]))
        .build();
    for part in [
        tix_gateway::openapi(),
        tix_auth::openapi(),
        tix_tickets::openapi(),
        tix_orders::openapi(),
        tix_payments::openapi(),
    ] {
        doc.merge(part);
    }
    doc.tags = Some(tags());
    let components = doc.components.get_or_insert_with(Components::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "The `token` of sign-up, sign-in or renew: an HS256 JWT, valid for at most \
                     24 hours by default (never past its session's end, 30 days after sign-in), \
                     refused once its session signed out",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        SESSION_COOKIE,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "session",
            "The cookie sign-up, sign-in and renew set: base64 of `{\"jwt\":\"<token>\"}`, as the \
             course's web client sends it",
        ))),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let upstream = upstream_of(path);
        for op in operations(item) {
            add_shared_responses(op, upstream);
        }
    }
    doc
}

/// The document as committed: pretty JSON with a final newline.
pub fn to_json() -> String {
    let mut s = serde_json::to_string_pretty(&document()).expect("the document serializes");
    s.push('\n');
    s
}

fn tags() -> Vec<Tag> {
    [
        ("users", "Accounts and sessions (the auth service)"),
        ("tickets", "Tickets for sale (the tickets service)"),
        (
            "orders",
            "Reservations: an order holds its ticket until it is paid, cancelled or expires (the orders service)",
        ),
        (
            "payments",
            "Paying for an order, and the receipts (the payments service)",
        ),
        ("health", "The gateway's own endpoints"),
    ]
    .into_iter()
    .map(|(name, description)| {
        let mut t = Tag::new(name);
        t.description = Some(description.into());
        t
    })
    .collect()
}

/// The service behind a path, as the gateway routes it.
fn upstream_of(path: &str) -> Option<&'static str> {
    [
        ("/api/users", "auth"),
        ("/api/tickets", "tickets"),
        ("/api/orders", "orders"),
        ("/api/payments", "payments"),
    ]
    .into_iter()
    .find(|(prefix, _)| path == *prefix || path.starts_with(&format!("{prefix}/")))
    .map(|(_, name)| name)
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
}

fn error(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    )
}

/// Adds `status` to the operation, or appends `more` to the description it has.
fn add_or_extend(op: &mut Operation, status: &str, response: Response, more: &str) {
    match op.responses.responses.get_mut(status) {
        Some(RefOr::T(existing)) => {
            existing.description = format!("{}; {more}", existing.description);
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            op.responses
                .responses
                .insert(status.to_string(), RefOr::T(response));
        }
    }
}

/// What every operation may answer besides what its handler says: the shared layers'
/// errors (docs/api.md, "Conventions") and, through the gateway, its own.
fn add_shared_responses(op: &mut Operation, upstream: Option<&str>) {
    if op.request_body.is_some() {
        let bad_body = "`Malformed JSON in the request body`, `Invalid request body: …` (a \
                        value of the wrong shape), `Expected a JSON body (Content-Type: \
                        application/json)`";
        add_or_extend(op, "400", error(bad_body).build(), bad_body);
        let too_large = "`Request body is too large` (64 KiB by default)";
        add_or_extend(op, "413", error(too_large).build(), too_large);
        let slow = "`The request body did not arrive in time`: the client had not sent all of \
                    its body when the request timeout ran out";
        add_or_extend(op, "408", error(slow).build(), slow);
    }
    let has_query = op
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query));
    if has_query {
        let bad_query = "a query string that cannot be decoded (`Invalid query string: …`)";
        add_or_extend(op, "400", error(bad_query).build(), bad_query);
    }
    let internal = "`Something went wrong`: the cause is in the service's log, never in the answer";
    add_or_extend(op, "500", error(internal).build(), internal);
    if let Some(service) = upstream {
        let unavailable =
            format!("`The {service} service is unavailable`: the gateway cannot reach it");
        add_or_extend(op, "502", error(&unavailable).build(), &unavailable);
        let timeout = "`The request took too long` (10 s in the services, 30 s in the gateway)";
        add_or_extend(op, "503", error(timeout).build(), timeout);
    }
}

/// The links from one answer to the requests it makes possible: a fuzzer that follows them
/// (Schemathesis' stateful phase) reserves real tickets and pays for real orders. Written as
/// JSON: utoipa 5 spells a link's fields in snake case.
fn add_links(doc: &mut Value) {
    let by_id = |op: &str| json!({"operationId": op, "parameters": {"id": "$response.body#/id"}});
    let links = [
        (
            "/api/tickets",
            "post",
            "201",
            json!({"ShowTicket": by_id("showTicket"), "UpdateTicket": by_id("updateTicket")}),
        ),
        (
            "/api/tickets",
            "get",
            "200",
            json!({"ReserveFirst": {
                "operationId": "createOrder",
                "requestBody": {"ticketId": "$response.body#/0/id"},
            }}),
        ),
        (
            "/api/orders",
            "post",
            "201",
            json!({
                "ShowOrder": by_id("showOrder"),
                "CancelOrder": by_id("cancelOrder"),
                "PayOrder": {
                    "operationId": "createPayment",
                    "requestBody": {"orderId": "$response.body#/id", "token": "tok_visa"},
                },
            }),
        ),
        (
            "/api/payments",
            "post",
            "201",
            json!({"ShowPayment": by_id("showPayment")}),
        ),
        (
            "/api/payments",
            "post",
            "202",
            json!({"ShowPayment": by_id("showPayment")}),
        ),
    ];
    for (path, method, status, to) in links {
        let response = &mut doc["paths"][path][method]["responses"][status];
        assert!(
            response.is_object(),
            "a link from {method} {path} {status}, which is not documented"
        );
        response["links"] = to;
    }
}
