//! The machinery behind the registries of source and output types: the
//! `kinds!` macro, which declares an enum with one variant per type and
//! its dispatch (read the type's table, name it, validate it, build it),
//! the [`Validate`] trait through which each type's struct checks its keys
//! into what its component is built from, and the [`Build`] trait through
//! which it builds its component. The registries themselves sit beside the
//! components (`sources/kinds.rs`, `outputs/kinds.rs`), one line per type.

use super::problem::Problems;

/// Checking a type's own keys, as read, into what its component is built
/// from ("parse, don't validate"): each required key present and each
/// value of the form it needs, reported by key path when it is not. A
/// struct keeps a required key as `Option` so that `check` reads past its
/// absence and reports every problem of the file in one run; this is the
/// one place its presence is checked, and the build takes the
/// [`Validate::Valid`] value it returns, never the `Option`.
pub trait Validate {
    /// The type's required keys, present and parsed.
    type Valid;
    /// The valid keys, or `None` with each problem reported in `p` under
    /// the component's key path `at` (`source[2]`).
    fn validate(&self, at: &str, p: &mut Problems) -> Option<Self::Valid>;
}

/// Building something from a typed config: `sources` implements it for
/// each source type's struct (its connector), `outputs` for each output
/// type's, so that `SourceKind::build` dispatches to them. Each impl
/// (written by `sources::connector!` and `outputs::output!`) builds from
/// what [`Validate`] returns.
pub trait Build<Ctx> {
    /// What is built.
    type Output;
    /// Build it.
    fn build(&self, ctx: Ctx) -> Self::Output;
}

/// Declares the enum of a component's types (`SourceKind`, `OutputKind`)
/// from one line per type: `Variant(Struct) = "type"`, with its doc comment
/// and, for a type compiled only in tests, `#[cfg(test)]`; `Spec` is the
/// trait every struct implements, `"what"` the component in messages, and
/// `Ctx => Out` what its [`Build`] impls take and give.
macro_rules! kinds {
    ($kind:ident: $spec:path, $what:literal, $ctx:ty => $out:ty; $($(#[doc = $doc:literal])* $(#[cfg($cfg:meta)])? $variant:ident($ty:ty) = $name:literal,)*) => {
        /// A component's type and its own keys.
        // Built once per reload and never moved on a hot path: the size of
        // the largest variant (`http_json`) costs nothing worth a box.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq)]
        pub enum $kind {
            $($(#[doc = $doc])* $(#[cfg($cfg)])? $variant($ty),)*
        }

        $(
            $(#[cfg($cfg)])?
            impl TryFrom<$kind> for $ty {
                type Error = $kind;
                /// The type's struct, or the kind back when it is another type.
                #[allow(unreachable_patterns)]
                fn try_from(kind: $kind) -> Result<Self, $kind> {
                    match kind {
                        $kind::$variant(c) => Ok(c),
                        other => Err(other),
                    }
                }
            }
        )*

        impl $kind {
            /// Every `type` it can have.
            // One push per line, each of which may be `#[cfg(test)]`.
            #[allow(clippy::vec_init_then_push)]
            pub fn names() -> Vec<&'static str> {
                let mut names = Vec::new();
                $($(#[cfg($cfg)])? names.push($name);)*
                names
            }

            /// Every key any of its types declares beyond the common ones.
            pub fn all_keys() -> Vec<&'static str> {
                let mut keys = Vec::new();
                $($(#[cfg($cfg)])? keys.extend_from_slice($crate::settings::table::field_names::<$ty>());)*
                keys
            }

            /// The `type` as written in the file.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $($(#[cfg($cfg)])? $kind::$variant(_) => $name,)*
                }
            }

            /// Check the type's own keys ([`Validate`](crate::settings::Validate)), each problem
            /// reported in `p`; whether they are valid (the component can
            /// be built).
            pub fn validate(&self, at: &str, p: &mut $crate::settings::Problems) -> bool {
                match self {
                    $($(#[cfg($cfg)])? $kind::$variant(c) => $crate::settings::registry::Validate::validate(c, at, p).is_some(),)*
                }
            }

            /// What the type's struct says about itself.
            pub fn spec(&self) -> &dyn $spec {
                match self {
                    $($(#[cfg($cfg)])? $kind::$variant(c) => c,)*
                }
            }

            /// Read the type's own keys (`name`, `type` and the common keys
            /// taken out) from `value`; `None` when the type is unknown or a
            /// key could not be read (each reported in `problems`).
            pub(crate) fn read(
                type_name: &str,
                at: &str,
                value: toml::Value,
                problems: &mut Vec<$crate::settings::Problem>,
            ) -> Option<Self> {
                let others = Self::all_keys();
                match type_name {
                    $($(#[cfg($cfg)])? $name => $crate::settings::table::typed_table::<$ty>(at, value, $name, $what, &others, problems)
                        .map($kind::$variant),)*
                    other => {
                        $crate::settings::table::unknown_type(at, other, &Self::names(), problems);
                        None
                    }
                }
            }

            /// Build from the type's struct through its `Build` impl.
            pub fn build(&self, ctx: $ctx) -> $out {
                match self {
                    $($(#[cfg($cfg)])? $kind::$variant(c) => $crate::settings::registry::Build::build(c, ctx),)*
                }
            }
        }
    };
}

pub(crate) use kinds;
