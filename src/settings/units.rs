//! Value types of the config file: durations (`"30s"`), sizes (`"64MiB"`)
//! and rates (`"5/s"`), each parsed from a string with a clear error.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

/// A duration written as a string: `"30s"`, `"5m"`, `"1h 30m"`, `"250ms"`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl Dur {
    /// Parse `"30s"`-style text.
    pub fn parse(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s.trim())
            .map(Dur)
            .map_err(|e| format!("invalid duration {s:?} ({e}); write it like \"30s\", \"5m\" or \"1h\""))
    }
    /// Seconds, as a `Duration`.
    pub fn get(self) -> Duration {
        self.0
    }
    /// A duration from seconds.
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
}

impl fmt::Debug for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Dur::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A size written as a string: `"64MiB"`, `"1GiB"`, `"500KB"`, or a plain
/// number of bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(pub u64);

impl Size {
    /// Parse `"64MiB"`-style text.
    pub fn parse(s: &str) -> Result<Self, String> {
        s.trim()
            .parse::<bytesize::ByteSize>()
            .map(|b| Size(b.as_u64()))
            .map_err(|e| format!("invalid size {s:?} ({e}); write it like \"64MiB\" or \"1GiB\""))
    }
    /// Bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", bytesize::ByteSize(self.0))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Size(n)),
            Raw::S(s) => Size::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// A rate written as `"5/s"`, `"20/m"`, `"1000/h"`: so many per period.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// How many.
    pub count: NonZeroU32,
    /// Per this long.
    pub per: Duration,
}

impl Rate {
    /// Parse `"5/s"`-style text. The period is `s`, `m`, `h` or a duration
    /// such as `10s`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid rate {s:?}; write it like \"5/s\", \"20/m\" or \"1000/h\"");
        let (n, per) = s.trim().split_once('/').ok_or_else(bad)?;
        let count = n.trim().parse::<u32>().ok().and_then(NonZeroU32::new).ok_or_else(bad)?;
        let per = match per.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            other => humantime::parse_duration(other).map_err(|_| bad())?,
        };
        if per.is_zero() {
            return Err(bad());
        }
        Ok(Rate { count, per })
    }

    /// The time between two units at this rate.
    pub fn interval(self) -> Duration {
        self.per / self.count.get()
    }

    /// Events per second, as a float.
    pub fn per_second(self) -> f64 {
        f64::from(self.count.get()) / self.per.as_secs_f64()
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, humantime::format_duration(self.per))
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Rate::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// When a source without a cursor starts: an RFC 3339 time, or a duration
/// back from now (`"24h"`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum StartAt {
    /// An absolute time.
    At(chrono::DateTime<chrono::Utc>),
    /// This long before the first poll.
    Ago(Duration),
}

impl StartAt {
    /// Parse either form.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s.trim()) {
            return Ok(StartAt::At(t.with_timezone(&chrono::Utc)));
        }
        humantime::parse_duration(s.trim()).map(StartAt::Ago).map_err(|_| {
            format!("invalid start_at {s:?}; write an RFC 3339 time or a duration back from now like \"24h\"")
        })
    }

    /// The time this resolves to, given the current time.
    pub fn resolve(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        match self {
            StartAt::At(t) => *t,
            StartAt::Ago(d) => {
                chrono::Duration::from_std(*d).ok().and_then(|d| now.checked_sub_signed(d)).unwrap_or(now)
            }
        }
    }
}

/// How far back a source with no cursor starts by default (`start_at`).
const DEFAULT_START_AGO: Duration = Duration::from_secs(24 * 3600);

impl Default for StartAt {
    fn default() -> Self {
        StartAt::Ago(DEFAULT_START_AGO)
    }
}

impl<'de> Deserialize<'de> for StartAt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        StartAt::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(Dur::parse("30s").unwrap().get(), Duration::from_secs(30));
        assert_eq!(Dur::parse("5m").unwrap().get(), Duration::from_secs(300));
        assert!(Dur::parse("5 parsecs").unwrap_err().contains("invalid duration"));
        assert_eq!(Size::parse("64MiB").unwrap().bytes(), 64 << 20);
        assert_eq!(Size::parse("1GiB").unwrap().bytes(), 1 << 30);
        assert!(Size::parse("lots").is_err());
        let r = Rate::parse("20/m").unwrap();
        assert_eq!(r.interval(), Duration::from_secs(3));
        assert_eq!(Rate::parse("5/s").unwrap().count.get(), 5);
        assert!(Rate::parse("0/s").is_err());
        assert!(Rate::parse("5").is_err());
        assert!(matches!(StartAt::parse("24h").unwrap(), StartAt::Ago(d) if d == Duration::from_secs(86400)));
        assert!(matches!(StartAt::parse("2024-05-01T00:00:00Z").unwrap(), StartAt::At(_)));
        assert!(StartAt::parse("yesterday").is_err());
    }
}
