//! The security suite (docs/security.md): each defence against an
//! untrusted API, receiver, network or local user, tried on the real
//! binary with fakes on 127.0.0.1 only. Every test here failed on the
//! release before these defences (0246794).

mod common;

#[path = "security/wire.rs"]
mod wire;

#[path = "security/origin.rs"]
mod origin;

#[path = "security/operator.rs"]
mod operator;

#[path = "security/untrusted.rs"]
mod untrusted;

#[path = "security/check.rs"]
mod check;

#[path = "security/listener.rs"]
mod listener;
