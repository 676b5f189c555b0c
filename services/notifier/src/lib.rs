//! The notifier: routing, alert texts and delivery of alerts to people and
//! systems.

pub mod deliver;
pub mod render;
pub mod routing;
