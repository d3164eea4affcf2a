//! # lifeboat-tests
//!
//! The local harness and the cross-function tests. The harness runs our real code
//! against real emulation on loopback: a moto server per test binary ([`moto`]), a table
//! per test ([`table`]), the example world ([`world`]), its routing ([`route53`]) and
//! data tier ([`data`]), and the local drill's whole chain ([`drill`]).

pub mod calls;
pub mod cur;
pub mod data;
pub mod deploy;
pub mod drill;
pub mod lambda;
pub mod machines;
pub mod moto;
pub mod route53;
pub mod stacks;
pub mod table;
pub mod twin;
pub mod world;
