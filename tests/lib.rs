//! The one integration test binary (one link step). A module per area.

mod common;

mod adopt;
mod adopt_live;
mod bench;
mod check;
mod cluster_services;

mod conveniences;

mod faults;
mod hostile;

mod attacks;
mod cli_errors;
mod cluster;
mod cluster_live;
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
