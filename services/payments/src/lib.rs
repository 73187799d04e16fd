//! tix payments service (being written).
