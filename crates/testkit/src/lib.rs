//! Test harness for nisvakt: real dependencies on loopback, started per
//! test on free ports and stopped on drop. Never used by the services
//! themselves.

pub mod smtp;
pub mod webhook;
