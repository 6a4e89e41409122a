//! End-to-end tests against the real services: each test gets its own PostgreSQL event
//! store, and those that need them their own MySQL read database and Kafka topic (see
//! `common` and `pipeline`). `chaos` and `private_services` start private brokers and
//! MySQL servers to kill.

mod abuse;
mod accounts;
mod board;
mod bulk_replay;
mod chaos;
mod closing;
mod cluster;
mod common;
mod conventions;
mod devtools;
mod docs;
mod faults;
mod global_order;
mod http_client;
mod jobs;
mod limits;
mod live;
mod live_recovery;
mod operations;
mod ownership;
mod pipeline;
mod privacy;
mod private_services;
mod proxy;
mod read_side;
mod scrapes;
mod sessions;
mod snapshots;
mod sse_client;
