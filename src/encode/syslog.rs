//! Syslog header settings shared by the RFC 5424, RFC 3164 and QRadar
//! encoders: the checked [`Facility`] and [`Severity`] codes and the
//! per-output [`SyslogHeader`].

use std::str::FromStr;

use super::ParseError;
use crate::event::Event;

/// A syslog facility code, 0 to 23 (RFC 5424 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Facility(u8);

/// Facility names accepted by [`Facility::from_str`], as rsyslog spells them.
/// 13 is "log audit" in RFC 5424; 14 and 15 have no agreed name, so only
/// their numbers are accepted.
const FACILITY_NAMES: [(&str, u8); 22] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("ntp", 12),
    ("audit", 13),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

const FACILITY_EXPECTED: &str = "a facility name (kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, \
     authpriv, ftp, ntp, audit, local0 … local7) or a number 0-23";

impl Facility {
    /// `user` (1): the default, as in Vector and logger(1).
    pub const USER: Self = Self(1);
    /// `auth` (4): security/authorization messages.
    pub const AUTH: Self = Self(4);
    /// `authpriv` (10): security/authorization messages (private).
    pub const AUTHPRIV: Self = Self(10);
    /// `local0` (16).
    pub const LOCAL0: Self = Self(16);

    /// The facility with this code; codes above 23 are rejected.
    pub fn new(code: u8) -> Result<Self, ParseError> {
        if code <= 23 {
            Ok(Self(code))
        } else {
            Err(ParseError::new("syslog facility", &code.to_string(), FACILITY_EXPECTED))
        }
    }

    /// The numeric code, 0 to 23.
    pub fn code(self) -> u8 {
        self.0
    }
}

impl Default for Facility {
    fn default() -> Self {
        Self::USER
    }
}

impl FromStr for Facility {
    type Err = ParseError;

    /// Parses a name (`"local0"`, `"AuthPriv"`; case-insensitive, an optional
    /// `log_` prefix as in `LOG_LOCAL0`) or a number 0-23.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError::new("syslog facility", s, FACILITY_EXPECTED);
        let t = s.trim().to_ascii_lowercase();
        if let Ok(n) = t.parse::<u8>() {
            return Self::new(n).map_err(|_| err());
        }
        let name = t.strip_prefix("log_").unwrap_or(&t);
        FACILITY_NAMES.iter().find(|(n, _)| *n == name).map(|&(_, code)| Self(code)).ok_or_else(err)
    }
}

/// A syslog severity (RFC 5424 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// 0: system is unusable.
    Emergency = 0,
    /// 1: action must be taken immediately.
    Alert = 1,
    /// 2: critical conditions.
    Critical = 2,
    /// 3: error conditions.
    Error = 3,
    /// 4: warning conditions; a failed action.
    Warning = 4,
    /// 5: normal but significant; any other audit event.
    Notice = 5,
    /// 6: informational messages.
    Informational = 6,
    /// 7: debug-level messages.
    Debug = 7,
}

const SEVERITIES: [(&str, Severity); 8] = [
    ("emerg", Severity::Emergency),
    ("alert", Severity::Alert),
    ("crit", Severity::Critical),
    ("err", Severity::Error),
    ("warning", Severity::Warning),
    ("notice", Severity::Notice),
    ("info", Severity::Informational),
    ("debug", Severity::Debug),
];

impl Severity {
    /// The numeric code, 0 to 7.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The default mapping from `event.outcome`: `failure` is a warning,
    /// anything else a notice (an audit trail is significant, not chatter).
    pub fn from_outcome(outcome: &str) -> Self {
        if outcome == "failure" {
            Self::Warning
        } else {
            Self::Notice
        }
    }
}

impl FromStr for Severity {
    type Err = ParseError;

    /// Parses a syslog keyword (`"warning"`, `"info"`; case-insensitive) or a
    /// number 0-7.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let by_code = t.parse::<u8>().ok().and_then(|n| SEVERITIES.iter().find(|(_, v)| v.code() == n));
        by_code.or_else(|| SEVERITIES.iter().find(|(name, _)| *name == t)).map(|&(_, v)| v).ok_or_else(|| {
            ParseError::new("syslog severity", s, "emerg, alert, crit, err, warning, notice, info, debug or 0-7")
        })
    }
}

/// The fixed parts of a syslog header, built once from an output's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogHeader {
    /// The facility of every message.
    pub facility: Facility,
    /// A fixed severity; `None` derives it from each event's outcome
    /// ([`Severity::from_outcome`]).
    pub severity: Option<Severity>,
    /// HOSTNAME; QRadar picks the log source by it. Empty writes `-`.
    pub hostname: String,
    /// APP-NAME (RFC 5424) and TAG (RFC 3164).
    pub app_name: String,
    /// PROCID; empty writes `-` (RFC 5424) or nothing (RFC 3164).
    pub procid: String,
}

impl Default for SyslogHeader {
    fn default() -> Self {
        Self {
            facility: Facility::default(),
            severity: None,
            hostname: String::new(),
            app_name: "auditrelay".to_owned(),
            procid: String::new(),
        }
    }
}

impl SyslogHeader {
    /// PRIVAL = facility × 8 + severity, at most 191.
    pub fn pri(&self, event: &Event) -> u8 {
        let severity = self.severity.unwrap_or_else(|| Severity::from_outcome(event.outcome()));
        self.facility.code() * 8 + severity.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::fixtures;

    #[test]
    fn facility_parses_names_and_numbers() {
        assert_eq!("local0".parse::<Facility>(), Ok(Facility::LOCAL0));
        assert_eq!("AuthPriv".parse::<Facility>(), Ok(Facility::AUTHPRIV));
        assert_eq!("LOG_AUTH".parse::<Facility>(), Ok(Facility::AUTH));
        assert_eq!("23".parse::<Facility>().map(Facility::code), Ok(23));
        assert_eq!("0".parse::<Facility>().map(Facility::code), Ok(0));
        let err = "local8".parse::<Facility>().unwrap_err();
        assert!(err.to_string().starts_with("invalid syslog facility \"local8\": expected a facility name"), "{err}");
        assert!("24".parse::<Facility>().is_err());
        assert!("".parse::<Facility>().is_err());
        assert!(Facility::new(24).is_err());
    }

    #[test]
    fn severity_parses_and_follows_outcome() {
        assert_eq!("warning".parse::<Severity>(), Ok(Severity::Warning));
        assert_eq!("6".parse::<Severity>(), Ok(Severity::Informational));
        assert!("8".parse::<Severity>().is_err());
        assert_eq!(Severity::from_outcome("failure"), Severity::Warning);
        assert_eq!(Severity::from_outcome("success"), Severity::Notice);
        assert_eq!(Severity::from_outcome("unknown"), Severity::Notice);
    }

    #[test]
    fn pri_is_facility_times_eight_plus_severity() {
        let mut h = SyslogHeader { facility: Facility::LOCAL0, ..SyslogHeader::default() };
        assert_eq!(h.pri(&fixtures::login()), 16 * 8 + 4);
        h.severity = Some(Severity::Debug);
        h.facility = Facility::new(23).unwrap();
        assert_eq!(h.pri(&fixtures::login()), 191);
    }
}
