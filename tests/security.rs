//! The security suite (docs/security.md): each defence against an
//! untrusted API, receiver, network or local user, tried on the real
//! binary with fakes on 127.0.0.1 only. Every test here failed on the
//! release before these defences (0246794). One module per defence, in
//! `tests/security/`.

mod check;
mod listener;
mod operator;
mod origin;
mod untrusted;
mod wire;
