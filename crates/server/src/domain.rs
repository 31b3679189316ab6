//! The pure core: rules with no clock, socket, database or async inside.
//!
//! Time comes in as an argument, randomness too, and results are data. Every
//! module here is tested tick by tick without a runtime.

pub mod access;
pub mod analysis;
pub mod custom_metrics;
pub mod deployment;
pub mod exposition;
pub mod health;
pub mod judge;
pub mod roles;
pub mod router;
pub mod shadow;
pub mod split;
pub mod verdicts;
pub mod view;
