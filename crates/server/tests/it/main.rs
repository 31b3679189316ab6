//! The server's integration tests: one binary, real sockets on 127.0.0.1:0.

mod access;
mod api;
mod binary;
mod chaos;
mod cli;
mod clock;
mod demo;
mod docs;
mod faults;
mod full_disk;
mod fuzz_corpus;
mod hooks;
mod judge;
mod metrics;
mod promotion;
mod proxy;
mod proxy_grpc;
mod proxy_h2;
mod proxy_upstream_h2;
mod recovery;
mod router;
mod router_gateway;
mod router_nginx;
mod security;
mod stream;
mod support;
