//! canary's server.
pub mod config;
