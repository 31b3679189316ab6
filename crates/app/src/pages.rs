//! Screens of the console.

pub mod dashboard;
