//! The one integration test binary (one link step). A module per area.

mod common;

mod bench;
mod check;

mod conveniences;

mod faults;
mod hostile;

mod attacks;
mod cli_errors;
mod e2e;
mod live;
mod ownership;
mod regenerate;
mod render;
mod safety;
mod secrets;
mod standin;
mod validators;
mod wizard;
