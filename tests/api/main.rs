//! End-to-end tests of the command API against a real PostgreSQL, one database per test.

mod accounts;
mod board;
mod chaos;
mod common;
mod conventions;
mod docs;
mod faults;
mod global_order;
mod http_client;
mod operations;
mod pipeline;
mod private_services;
mod proxy;
mod read_side;
