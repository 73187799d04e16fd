//! The OpenAPI schemas of the types whose wire form serde alone does not say (feature
//! `openapi`): [`Money`] is a JSON number of currency units, [`UnixMillis`] an RFC 3339
//! string, and a request's `price` is either a number or a decimal string. The services
//! annotate their handlers with these types; `tix-openapi` merges the result into
//! `docs/openapi.json`.

use std::borrow::Cow;

use serde_json::json;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::{Money, UnixMillis};

/// The security scheme of `Authorization: Bearer <jwt>`.
pub const BEARER: &str = "bearerAuth";
/// The security scheme of the `session` cookie (base64 of `{"jwt":"<jwt>"}`).
pub const SESSION_COOKIE: &str = "sessionCookie";

impl PartialSchema for Money {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .description(Some(
                "An amount of money in currency units: a JSON number with at most 2 decimals \
                 (integer cents inside the services).",
            ))
            .examples([json!(20.5)])
            .into()
    }
}

impl ToSchema for Money {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Money")
    }
}

impl PartialSchema for UnixMillis {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some(
                "An instant: RFC 3339 text in UTC, to the millisecond.",
            ))
            .examples([json!("2026-11-26T05:31:00.123Z")])
            .into()
    }
}

impl ToSchema for UnixMillis {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("UnixMillis")
    }
}

/// A ticket's price in a request: a number of currency units, or the same as a plain
/// decimal string (`"12.50"`, what a web form sends). Greater than 0, at most 1,000,000, at
/// most 2 decimals; anything else is a 400.
pub fn price_input() -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .exclusive_minimum(Some(0))
                .maximum(Some(1_000_000))
                .multiple_of(Some(0.01)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^\s*([0-9]+\.?[0-9]{0,2}|\.[0-9]{1,2})\s*$"))
                .description(Some("A plain decimal: digits and at most one point")),
        )
        .description(Some(
            "The price in currency units: a number, or a string holding a plain decimal \
             (\"12.50\"). Greater than 0, at most 1000000, at most 2 decimals. Prices are \
             always answered as numbers.",
        ))
        .examples([json!(25.5), json!("12.50")])
        .into()
}
