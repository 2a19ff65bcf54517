//! `[[source]]`: its name, the keys every source has
//! ([`SourceCommon`], owned by `sources`) and one typed struct per source
//! type ([`SourceKind`], the registry in `sources/kinds.rs`), chosen by the
//! `type` key.
//!
//! A `[[source]]` table is read in two passes ([`super::collect`]): `name`,
//! `type` and the common keys are taken out first, then the rest is read
//! into the type's own struct, which denies every key it does not declare.
//! (serde's `flatten` would read it in one pass but cannot be combined
//! with `deny_unknown_fields`; an internally tagged enum would lose the key
//! paths `check` reports.)
//!
//! A new source type is a folder in `sources/` (its connector, its
//! `config.rs` and tests) and one line in `sources/kinds.rs`
//! (`docs/adding-a-connector.md`); nothing here changes.

pub use crate::sources::{SourceCommon, SourceKind};

/// `[[source]]`: its name, the keys every source has, and its type's keys.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    /// Unique name, used in cursors, metrics and `labels.source`.
    pub name: String,
    /// The keys every source type has.
    pub common: SourceCommon,
    /// The type (`type = "opencti"`) and its own keys.
    pub kind: SourceKind,
}

impl SourceConfig {
    /// The `type` as written in the file.
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }
}
