//! `timestamp_format`: how an API writes times (read from its events,
//! written into its request parameters). A closed vocabulary plus strftime
//! patterns, checked when the configuration is validated.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

/// How an API writes times.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeFormat {
    /// `2024-05-01T10:00:00.123Z`
    Rfc3339,
    /// Seconds since the epoch (number or numeric string, fraction allowed).
    Unix,
    /// Milliseconds since the epoch.
    UnixMs,
    /// A strftime pattern; UTC unless it has `%z`.
    Pattern(String),
}

impl TimeFormat {
    /// Parse the `timestamp_format` key; the error is the text refused.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "rfc3339" => Ok(TimeFormat::Rfc3339),
            "unix" => Ok(TimeFormat::Unix),
            "unix_ms" => Ok(TimeFormat::UnixMs),
            p if p.contains('%')
                && !chrono::format::StrftimeItems::new(p).any(|i| matches!(i, chrono::format::Item::Error)) =>
            {
                Ok(TimeFormat::Pattern(p.to_owned()))
            }
            other => Err(other.to_owned()),
        }
    }

    /// Read a time from a JSON value.
    pub fn read(&self, v: &Value) -> Option<DateTime<Utc>> {
        let num = || v.as_f64().or_else(|| v.as_str()?.trim().parse::<f64>().ok());
        match self {
            TimeFormat::Rfc3339 => DateTime::parse_from_rfc3339(v.as_str()?.trim()).ok().map(|t| t.with_timezone(&Utc)),
            TimeFormat::Unix => {
                let s = num()?;
                Utc.timestamp_opt(s.floor() as i64, ((s.fract()) * 1e9).round() as u32).single()
            }
            TimeFormat::UnixMs => Utc.timestamp_millis_opt(num()? as i64).single(),
            TimeFormat::Pattern(p) => {
                let text = v.as_str()?;
                if p.contains("%z") || p.contains("%:z") {
                    DateTime::parse_from_str(text, p).ok().map(|t| t.with_timezone(&Utc))
                } else {
                    NaiveDateTime::parse_from_str(text, p).ok().map(|t| t.and_utc())
                }
            }
        }
    }

    /// Write a time for a request parameter.
    pub fn write(&self, t: DateTime<Utc>) -> String {
        match self {
            TimeFormat::Rfc3339 => crate::event::rfc3339(t),
            TimeFormat::Unix => t.timestamp().to_string(),
            TimeFormat::UnixMs => t.timestamp_millis().to_string(),
            TimeFormat::Pattern(p) => {
                // `parse` rejected patterns chrono cannot format; should one
                // slip through, write RFC 3339 rather than panic.
                use std::fmt::Write as _;
                let mut out = String::new();
                match write!(out, "{}", t.format(p)) {
                    Ok(()) => out,
                    Err(_) => crate::event::rfc3339(t),
                }
            }
        }
    }
}
