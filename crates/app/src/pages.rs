//! Screens of the console.

pub mod dashboard;
pub mod login;
