//! Wire types shared by the tix services and clients.
//!
//! - [`events`]: the event catalog — every subject on the bus, its payload and the envelope
//!   around it. Services publish and consume only these types, so a payload change is a
//!   compile error in every consumer rather than a surprise at run time.

pub mod events;
