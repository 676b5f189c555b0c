//! End-to-end tests of nisvakt live in `tests/`: they start a real
//! nats-server and the four real service binaries and talk to them only
//! over HTTP and NATS, as the ticketing system and integrators do.
