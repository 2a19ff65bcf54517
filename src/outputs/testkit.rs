//! What the outputs' unit tests share: an `[[output]]` table read by the
//! output layer's own types (the keys every output has, and its type's
//! struct through the registry, each checked), without the file model.

use super::{OutputCommon, OutputKind};
use crate::settings::table::{field_names, table_of};
use crate::settings::Problems;

/// One `[[output]]` as its types read it.
#[derive(Debug)]
pub struct Output {
    /// `name`.
    pub name: String,
    /// The keys every output has.
    pub common: OutputCommon,
    /// The type and its own keys.
    pub kind: OutputKind,
}

/// The one `[[output]]` table of `text`, at `output[0]`: its `name`,
/// `type`, common keys and type's keys read and checked; panics on a
/// problem.
pub fn output(text: &str) -> Output {
    let mut doc: toml::Table = toml::from_str(text).unwrap();
    let toml::Value::Array(mut tables) = doc.remove("output").unwrap() else { panic!("no [[output]]") };
    let toml::Value::Table(mut table) = tables.remove(0) else { panic!("[[output]] is a table") };
    let name = table.remove("name").unwrap().as_str().unwrap().to_owned();
    let type_name = table.remove("type").unwrap().as_str().unwrap().to_owned();
    let common_keys = field_names::<OutputCommon>();
    let (common, rest): (toml::Table, toml::Table) =
        table.into_iter().partition(|(k, _)| common_keys.contains(&k.as_str()));
    let mut problems = Vec::new();
    let common = table_of::<OutputCommon>("output[0]", toml::Value::Table(common), &mut problems);
    let kind = OutputKind::read(&type_name, "output[0]", toml::Value::Table(rest), &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    let kind = kind.unwrap();
    let mut p = Problems::default();
    assert!(kind.validate("output[0]", &mut p), "{p:?}");
    Output { name, common: common.unwrap(), kind }
}
