//! # lifeboat-tests
//!
//! The local harness and the cross-function tests. The harness runs our real code
//! against real emulation on loopback: a moto server per test binary ([`moto`]), a table
//! per test ([`table`]), and the example world the drill seeds ([`world`]).

pub mod cur;
pub mod lambda;
pub mod machines;
pub mod moto;
pub mod route53;
pub mod table;
pub mod world;
