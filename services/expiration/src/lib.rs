//! tix expiration service (being written).
