//! Syslog framing: the transports (`udp`, `tcp`, `tls`), how messages are
//! delimited in a stream (RFC 6587 octet counting or newline), cutting a
//! message at a UTF-8 boundary, and the host part of an address. Pure
//! functions over bytes, used by the sender in [`super::syslog`]. The
//! transports and framings are closed vocabularies of the config file
//! (`transport = "tcp"`, `framing = "newline"`), typed here from the moment
//! they are read.

use serde::Deserialize;

/// How syslog messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// One message per datagram (RFC 5426). No delivery guarantee.
    Udp,
    /// A TCP stream of framed messages (RFC 6587).
    #[default]
    Tcp,
    /// TLS over TCP (RFC 5425).
    Tls,
}

impl Transport {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// The well-known port: 514 for UDP and TCP, 6514 for TLS.
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Udp | Transport::Tcp => 514,
            Transport::Tls => 6514,
        }
    }
}

/// How messages are delimited in a TCP or TLS stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    /// `LEN SP MSG` (RFC 6587 §3.4.1, the only framing of RFC 5425).
    #[default]
    OctetCounting,
    /// `MSG LF` (RFC 6587 §3.4.2, "non-transparent").
    Newline,
}

impl Framing {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Framing::OctetCounting => "octet-counting",
            Framing::Newline => "newline",
        }
    }
}

/// Append one framed message to `out`. Newline framing replaces any LF in
/// the message with a space, so it stays one message.
pub fn frame_into(msg: &[u8], framing: Framing, out: &mut Vec<u8>) {
    match framing {
        Framing::OctetCounting => {
            out.extend_from_slice(msg.len().to_string().as_bytes());
            out.push(b' ');
            out.extend_from_slice(msg);
        }
        Framing::Newline => {
            out.extend(msg.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
            out.push(b'\n');
        }
    }
}

/// The longest prefix of `msg` of at most `max` bytes that does not end
/// inside a UTF-8 sequence.
pub fn cut_at_char_boundary(msg: &[u8], max: usize) -> &[u8] {
    if msg.len() <= max {
        return msg;
    }
    let mut end = max;
    // A continuation byte (10xxxxxx) at `end` means `end` splits a character.
    while end > 0 && msg.get(end).is_some_and(|b| b & 0xC0 == 0x80) {
        end -= 1;
    }
    msg.get(..end).unwrap_or_default()
}

/// The host part of `host:port`, `[v6]:port` or a bare host.
pub fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(host, _)| host);
    }
    match address.rsplit_once(':') {
        // More than one colon and no brackets: a bare IPv6 address.
        Some((host, _)) if !host.contains(':') => host,
        _ => address,
    }
}
