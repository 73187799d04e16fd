//! Wire types shared by the tix services and clients.
//!
//! - [`events`]: the event catalog — every subject on the bus, its payload and the envelope
//!   around it. Services publish and consume only these types, so a payload change is a
//!   compile error in every consumer rather than a surprise at run time.

pub mod events;

/// A price in integer cents as the API shows it: a JSON number in currency units
/// (`2000` → `20`, `2050` → `20.5`). Cents are exact; only the display is a float.
pub fn price_json(cents: i64) -> serde_json::Value {
    if cents % 100 == 0 {
        serde_json::Value::from(cents / 100)
    } else {
        serde_json::Number::from_f64(cents as f64 / 100.0)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null)
    }
}
