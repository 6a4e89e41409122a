//! End-to-end tests of the command API against a real PostgreSQL, one database per test.

mod accounts;
mod board;
mod common;
mod conventions;
mod docs;
mod faults;
mod global_order;
mod operations;
mod pipeline;
mod proxy;
mod read_side;
