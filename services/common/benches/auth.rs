//! What checking a token costs per request, and what the revocation check adds to it.
//!
//! `cargo bench -p tix-common --bench auth` — prints the median of 7 rounds of each case:
//! - `decode only`: jsonwebtoken's HS256 check alone (the work there was before sessions
//!   could be revoked);
//! - `verify, none revoked` / `verify, 100k revoked`: `JwtKeys::verify`, which adds the
//!   lookup in the revoked sessions;
//! - `lookup alone, 100k revoked`: the revocation check by itself.

use std::hint::black_box;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tix_common::auth::{Claims, JwtKeys};

const SECRET: &str = "bench-secret-bench-secret-bench-secret-01";
const ROUNDS: usize = 7;
const PER_ROUND: u32 = 200_000;

/// Median nanoseconds per call of `f` over `ROUNDS` rounds.
fn median_ns(mut f: impl FnMut()) -> f64 {
    let mut per_call: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..PER_ROUND {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(PER_ROUND)
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    per_call[ROUNDS / 2]
}

fn main() {
    let keys = JwtKeys::new(SECRET, Duration::from_secs(3600)).unwrap();
    let (token, claims) = keys.sign("user-1", "u@example.com").unwrap();
    let decoding = DecodingKey::from_secret(SECRET.as_bytes());
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "iat"]);

    let decode_only = median_ns(|| {
        black_box(jsonwebtoken::decode::<Claims>(black_box(&token), &decoding, &validation).ok());
    });
    let none_revoked = median_ns(|| {
        black_box(keys.verify(black_box(&token)));
    });
    let until = claims.exp;
    for i in 0..100_000 {
        keys.revocations()
            .revoke(&format!("0190aaaa-0000-7000-8000-{i:012}"), until);
    }
    let many_revoked = median_ns(|| {
        black_box(keys.verify(black_box(&token)));
    });
    let lookup = median_ns(|| {
        black_box(keys.revocations().is_revoked(black_box(&claims.jti)));
    });
    println!("case                        ns/call (median of {ROUNDS} × {PER_ROUND})");
    println!("decode only                 {decode_only:>8.0}");
    println!("verify, none revoked        {none_revoked:>8.0}");
    println!("verify, 100k revoked        {many_revoked:>8.0}");
    println!("lookup alone, 100k revoked  {lookup:>8.1}");
}
