//! Secrets: a string that never prints, and its resolution from
//! `"${ENV_VAR}"`, a literal, or a sibling `*_file` key (looked up under
//! `$CREDENTIALS_DIRECTORY` too, for systemd's `LoadCredential=`).

use super::problem::{Problem, Problems};
use std::fmt;
use std::path::{Path, PathBuf};

/// A secret value. `Debug` prints `[redacted]` and there is no `Display`, so
/// a secret cannot reach a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a secret field's text comes from, as written in the file. Debug
/// shows `${VAR}` references and file paths but never a literal value, and
/// a value of the wrong type (`token = 12345`) is reported by its type
/// alone: `check` never quotes what was written at a secret key.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretRef(pub String);

impl SecretRef {
    /// Whether the file holds the secret itself (not `${VAR}`).
    pub fn is_literal(&self) -> bool {
        env_name(&self.0).is_none()
    }
}

impl<'de> serde::Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

/// Reads a string; anything else is an error naming the type found, never
/// the value (serde's own message would quote it).
struct SecretVisitor;

impl SecretVisitor {
    fn wrong<E: serde::de::Error>(found: &str) -> E {
        E::custom(format!(
            "invalid type: {found} (value not shown), expected a string: the secret in quotes, or \"${{VAR}}\""
        ))
    }
}

impl<'de> serde::de::Visitor<'de> for SecretVisitor {
    type Value = SecretRef;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SecretRef, E> {
        Ok(SecretRef(v.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<SecretRef, E> {
        Ok(SecretRef(v))
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<SecretRef, E> {
        Err(Self::wrong("boolean"))
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<SecretRef, E> {
        Err(Self::wrong("integer"))
    }
    fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<SecretRef, E> {
        Err(Self::wrong("integer"))
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<SecretRef, E> {
        Err(Self::wrong("integer"))
    }
    fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<SecretRef, E> {
        Err(Self::wrong("integer"))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<SecretRef, E> {
        Err(Self::wrong("float"))
    }
    fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<SecretRef, E> {
        Err(Self::wrong("bytes"))
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<SecretRef, E> {
        Err(Self::wrong("nothing"))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<SecretRef, E> {
        Err(Self::wrong("nothing"))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<SecretRef, A::Error> {
        Err(Self::wrong("array"))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<SecretRef, A::Error> {
        // A TOML date-time reaches serde as a map too.
        Err(Self::wrong("table or date"))
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, _: A) -> Result<SecretRef, A::Error> {
        Err(Self::wrong("enum"))
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match env_name(&self.0) {
            Some(var) => write!(f, "${{{var}}}"),
            None => f.write_str("[redacted]"),
        }
    }
}

/// A secret key of a component as configured: `check` warns when its
/// value is written in a file other users can read.
#[derive(Debug, Clone, Copy)]
pub struct SecretKey<'a> {
    /// The key, relative to its table (`token`, `auth.password`); the file
    /// key is this plus `_file`.
    pub key: &'static str,
    /// The inline value, if set.
    pub inline: Option<&'a SecretRef>,
    /// The `*_file` path, if set.
    pub file: Option<&'a Path>,
}

impl<'a> SecretKey<'a> {
    /// A secret `key` with its inline value and its file.
    pub fn new(key: &'static str, inline: Option<&'a SecretRef>, file: Option<&'a PathBuf>) -> Self {
        SecretKey { key, inline, file: file.map(PathBuf::as_path) }
    }

    /// The secret as set, for the component's build to resolve; a problem
    /// at `{at}.{key}` when neither the value nor the file is.
    pub fn require(self, at: &str, p: &mut Problems) -> Option<SetSecret> {
        let set = self.set();
        if set.is_none() {
            p.add(format!("{at}.{}", self.key), format!("is required (or {}_file)", self.key));
        }
        set
    }

    /// The secret as set (its value, its file or both), `None` when
    /// neither is: for a component that reports an unset secret its own way.
    pub fn set(self) -> Option<SetSecret> {
        let from = match (self.inline, self.file) {
            (Some(_), Some(_)) => SecretFrom::Both,
            (Some(r), None) => SecretFrom::Value(r.clone()),
            (None, Some(f)) => SecretFrom::File(f.to_path_buf()),
            (None, None) => return None,
        };
        Some(SetSecret { key: self.key, from })
    }
}

/// A required secret known to be set: its value (`"${VAR}"` or a
/// literal), its file, or both (refused when resolved, as `check` and the
/// build do). `Debug` shows what [`SecretRef`] shows: never a literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSecret {
    key: &'static str,
    from: SecretFrom,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SecretFrom {
    Value(SecretRef),
    File(PathBuf),
    Both,
}

impl SetSecret {
    /// A secret set inline at `key` (a key that has no `*_file` sibling).
    pub fn value(key: &'static str, value: &SecretRef) -> Self {
        SetSecret { key, from: SecretFrom::Value(value.clone()) }
    }

    /// Resolve it (IO: the environment or the file), recording a problem
    /// at `{at}.{key}` (`{key}_file` for the file) when it cannot be.
    pub fn resolve(&self, at: &str, env: &dyn Env, problems: &mut Vec<Problem>) -> Option<Secret> {
        let (key, found) = match &self.from {
            SecretFrom::Value(r) => (self.key.to_owned(), inline_value(r, env)),
            SecretFrom::File(path) => (format!("{}_file", self.key), read_file(path, env)),
            SecretFrom::Both => (self.key.to_owned(), Err(BOTH.to_owned())),
        };
        found.map_err(|message| problems.push(Problem::new(format!("{at}.{key}"), message))).ok()
    }
}

/// `Some("VAR")` when the text is exactly `${VAR}`.
fn env_name(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("${")?.strip_suffix('}')?;
    let valid = !inner.is_empty() && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some(inner)
}

/// Where to look for the environment and credential files; a parameter so
/// tests do not touch the process environment.
pub trait Env {
    /// An environment variable.
    fn var(&self, name: &str) -> Option<String>;
    /// Read a file.
    fn read(&self, path: &Path) -> std::io::Result<String>;
}

/// The real process environment and file system.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// Resolve a secret from its inline text (`${VAR}` or a literal) or its
/// `*_file` sibling. `Ok(None)` when neither is set. The error names the
/// variable or path, never the value.
pub fn resolve(inline: Option<&SecretRef>, file: Option<&Path>, env: &dyn Env) -> Result<Option<Secret>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(BOTH.into()),
        (Some(r), None) => inline_value(r, env).map(Some),
        (None, Some(path)) => read_file(path, env).map(Some),
        (None, None) => Ok(None),
    }
}

/// Why a secret set both inline and by file is refused.
const BOTH: &str = "set either the value or the *_file key, not both";

/// An inline secret: `${VAR}` from the environment, or the literal.
fn inline_value(r: &SecretRef, env: &dyn Env) -> Result<Secret, String> {
    match env_name(&r.0) {
        Some(var) => match env.var(var) {
            Some(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim())),
            Some(_) => Err(format!("environment variable {var} is empty")),
            None => Err(format!("environment variable {var} is not set")),
        },
        None if r.0.contains("${") => {
            Err("a secret is either exactly \"${VAR}\" or a literal; mixed text is not expanded".into())
        }
        None if r.0.is_empty() => Err("is empty".into()),
        None => Ok(Secret::new(r.0.clone())),
    }
}

fn read_file(path: &Path, env: &dyn Env) -> Result<Secret, String> {
    let mut candidates: Vec<PathBuf> = vec![path.to_path_buf()];
    if let Some(dir) = env.var("CREDENTIALS_DIRECTORY") {
        let in_creds = Path::new(&dir).join(path.file_name().unwrap_or(path.as_os_str()));
        if path.is_relative() {
            candidates.insert(0, Path::new(&dir).join(path));
        } else {
            candidates.push(in_creds);
        }
    }
    let mut last = None;
    for candidate in &candidates {
        match env.read(candidate) {
            Ok(text) => {
                let value = text.trim_end_matches(['\n', '\r']);
                if value.is_empty() {
                    return Err(format!("file {} is empty", candidate.display()));
                }
                return Ok(Secret::new(value));
            }
            Err(e) => last = Some(format!("cannot read {}: {e}", candidate.display())),
        }
    }
    Err(last.unwrap_or_else(|| format!("cannot read {}", path.display())))
}

/// Resolve each of `keys` (a component's secrets, as [`SecretKey`]s) for
/// `check`, without building the component: a problem with its key path
/// for each that is unset or cannot be read.
pub fn check_secrets(keys: &[SecretKey<'_>], at: &str, env: &dyn Env, problems: &mut Vec<Problem>) {
    for key in keys {
        need_secret(problems, at, key.key, key.inline, key.file, env);
    }
}

/// Resolve a required secret, recording a problem with its key path.
pub fn need_secret(
    problems: &mut Vec<Problem>,
    at: &str,
    key: &str,
    inline: Option<&SecretRef>,
    file: Option<&Path>,
    env: &dyn Env,
) -> Option<Secret> {
    match resolve(inline, file, env) {
        Ok(Some(s)) => Some(s),
        Ok(None) => {
            problems.push(Problem::new(format!("{at}.{key}"), format!("is required (or {key}_file)")));
            None
        }
        Err(message) => {
            let k = if file.is_some() && inline.is_none() { format!("{key}_file") } else { key.to_owned() };
            problems.push(Problem::new(format!("{at}.{k}"), message));
            None
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// An environment made of maps, for tests.
    #[derive(Default)]
    pub struct FakeEnv {
        pub vars: HashMap<String, String>,
        pub files: HashMap<PathBuf, String>,
    }

    impl Env for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }
        fn read(&self, path: &Path) -> std::io::Result<String> {
            self.files.get(path).cloned().ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{:?}", SecretRef("hunter2".into())), "[redacted]");
        assert_eq!(format!("{:?}", SecretRef("${TOKEN}".into())), "${TOKEN}");
    }

    /// A secret of the wrong type is reported by its type, never its value.
    #[test]
    fn a_mistyped_secret_is_not_quoted() {
        #[derive(Debug, serde::Deserialize)]
        struct T {
            #[allow(dead_code)]
            token: SecretRef,
        }
        for text in [
            "token = 987654321",
            "token = 98765.4321",
            "token = true",
            "token = [\"s3cr3t-in-array\"]",
            "token = { k = \"s3cr3t-in-table\" }",
            "token = 1987-06-05T04:03:02Z",
        ] {
            let err = toml::from_str::<T>(text).unwrap_err().message().to_owned();
            assert!(err.contains("invalid type") && err.contains("value not shown"), "{text}: {err}");
            for leak in ["987654321", "98765", "4321", "true", "s3cr3t", "1987"] {
                assert!(!err.contains(leak), "{text}: the value is quoted: {err}");
            }
        }
        let ok: T = toml::from_str("token = \"${TOKEN}\"").unwrap();
        assert!(!ok.token.is_literal());
        assert!(SecretRef("lit".into()).is_literal());
    }

    /// A required secret checked as set shows no literal in `Debug`, and
    /// what stops its resolution is reported at the key that was set.
    #[test]
    fn a_set_secret_never_prints_and_is_reported_at_its_key() {
        let literal = SecretRef("hunter2".into());
        let path = PathBuf::from("/nonexistent/token");
        let mut p = Problems::default();
        assert!(SecretKey::new("token", None, None).require("source[0]", &mut p).is_none());
        assert_eq!(p.0[0].to_string(), "source[0].token: is required (or token_file)");
        let set = SecretKey::new("token", Some(&literal), None).require("source[0]", &mut p).unwrap();
        assert!(!format!("{set:?}").contains("hunter2"), "{set:?}");
        let (env, mut problems) = (FakeEnv::default(), Vec::new());
        assert_eq!(set.resolve("source[0]", &env, &mut problems).unwrap().expose(), "hunter2");
        let file = SecretKey::new("auth.token", None, Some(&path)).set().unwrap();
        let both = SecretKey::new("token", Some(&literal), Some(&path)).set().unwrap();
        assert!(file.resolve("source[0]", &env, &mut problems).is_none());
        assert!(both.resolve("source[0]", &env, &mut problems).is_none());
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["source[0].auth.token_file", "source[0].token"], "{problems:?}");
        assert!(problems[1].message.contains("not both"), "{problems:?}");
    }

    #[test]
    fn resolves_env_literal_and_files() {
        let mut env = FakeEnv::default();
        env.vars.insert("TOKEN".into(), "abc\n".into());
        env.vars.insert("CREDENTIALS_DIRECTORY".into(), "/run/creds".into());
        env.files.insert("/run/creds/hec.token".into(), "from-creds\n".into());
        env.files.insert("/etc/a/tok".into(), "from-file\n".into());
        let r = |s: &str| SecretRef(s.into());
        assert_eq!(resolve(Some(&r("${TOKEN}")), None, &env).unwrap().unwrap().expose(), "abc");
        assert_eq!(resolve(Some(&r("lit")), None, &env).unwrap().unwrap().expose(), "lit");
        assert_eq!(resolve(None, Some(Path::new("/etc/a/tok")), &env).unwrap().unwrap().expose(), "from-file");
        assert_eq!(resolve(None, Some(Path::new("hec.token")), &env).unwrap().unwrap().expose(), "from-creds");
        assert_eq!(
            resolve(None, Some(Path::new("/etc/auditrelay/hec.token")), &env).unwrap().unwrap().expose(),
            "from-creds",
            "an absolute path that is missing falls back to $CREDENTIALS_DIRECTORY"
        );
        let err = resolve(Some(&r("${MISSING}")), None, &env).unwrap_err();
        assert!(err.contains("MISSING is not set"), "{err}");
        assert!(resolve(Some(&r("x")), Some(Path::new("/f")), &env).is_err());
        assert!(resolve(None, None, &env).unwrap().is_none());
    }
}
