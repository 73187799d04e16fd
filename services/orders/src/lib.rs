//! tix orders service (being written).
