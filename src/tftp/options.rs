//! Option negotiation (RFC 2347): which of the client's blksize (2348),
//! tsize, timeout (2349) and windowsize (7440) the server takes, clamped to
//! its limits. Options it does not know or values it cannot read are left
//! out of the OACK, which RFC 2347 allows; the client then uses the default.

use std::time::Duration;

/// RFC 1350's block size, used when the client asks for none.
pub const DEFAULT_BLKSIZE: u16 = 512;
/// RFC 2348's range.
pub const MIN_BLKSIZE: u16 = 8;
pub const MAX_BLKSIZE: u16 = 65464;

/// The server's limits for what a client may ask.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_blksize: u16,
    pub max_windowsize: u16,
}

/// What the transfer uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub blksize: u16,
    pub windowsize: u16,
    /// The client's retransmission timeout, when it set one.
    pub timeout: Option<Duration>,
    /// The accepted options in the client's order, for the OACK; empty means
    /// no OACK, data starts at once (RFC 1350).
    pub oack: Vec<(&'static str, String)>,
}

/// Negotiate with the file's size known (`size`, for tsize).
pub fn negotiate(requested: &[(String, String)], size: u64, limits: Limits) -> Negotiated {
    let mut n = Negotiated {
        blksize: DEFAULT_BLKSIZE,
        windowsize: 1,
        timeout: None,
        oack: Vec::new(),
    };
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in requested {
        // The first of a repeated option counts.
        if seen.contains(&name.as_str()) {
            continue;
        }
        seen.push(name);
        match name.as_str() {
            "blksize" => {
                if let Some(b) = number(value, MIN_BLKSIZE as u64, MAX_BLKSIZE as u64) {
                    n.blksize = (b as u16).min(limits.max_blksize);
                    n.oack.push(("blksize", n.blksize.to_string()));
                }
            }
            "windowsize" => {
                if let Some(w) = number(value, 1, 65535) {
                    n.windowsize = (w as u16).min(limits.max_windowsize).max(1);
                    n.oack.push(("windowsize", n.windowsize.to_string()));
                }
            }
            "timeout" => {
                if let Some(t) = number(value, 1, 255) {
                    n.timeout = Some(Duration::from_secs(t));
                    n.oack.push(("timeout", t.to_string()));
                }
            }
            // A read request sends 0; the answer is the size.
            "tsize" if number(value, 0, u64::MAX).is_some() => {
                n.oack.push(("tsize", size.to_string()));
            }
            _ => {}
        }
    }
    n
}

/// A decimal within bounds; anything else (signs, spaces, 40 digits) is not.
fn number(text: &str, min: u64, max: u64) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>().ok().filter(|v| (min..=max).contains(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_blksize: 1468,
        max_windowsize: 16,
    };

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn no_options_no_oack() {
        let n = negotiate(&[], 10, LIMITS);
        assert_eq!((n.blksize, n.windowsize, n.timeout), (512, 1, None));
        assert!(n.oack.is_empty());
    }

    #[test]
    fn pxe_firmware_options() {
        let n = negotiate(
            &opts(&[("tsize", "0"), ("blksize", "1456"), ("windowsize", "4")]),
            70_000,
            LIMITS,
        );
        assert_eq!((n.blksize, n.windowsize), (1456, 4));
        assert_eq!(
            n.oack,
            vec![
                ("tsize", "70000".to_string()),
                ("blksize", "1456".to_string()),
                ("windowsize", "4".to_string())
            ]
        );
    }

    #[test]
    fn values_are_clamped_to_the_limits() {
        let n = negotiate(
            &opts(&[
                ("blksize", "65464"),
                ("windowsize", "65535"),
                ("timeout", "3"),
            ]),
            0,
            LIMITS,
        );
        assert_eq!((n.blksize, n.windowsize), (1468, 16));
        assert_eq!(n.timeout, Some(Duration::from_secs(3)));
        assert_eq!(n.oack[0], ("blksize", "1468".to_string()));
    }

    #[test]
    fn bad_values_and_unknown_options_are_left_out() {
        let n = negotiate(
            &opts(&[
                ("blksize", "7"),
                ("blksize", "1024"),
                ("windowsize", "0"),
                ("timeout", "256"),
                ("tsize", "-1"),
                ("multicast", ""),
                ("blksize", "99999999999999999999999999999999999"),
            ]),
            5,
            LIMITS,
        );
        // The first blksize was invalid and counted as seen: default stays.
        assert_eq!((n.blksize, n.windowsize, n.timeout), (512, 1, None));
        assert!(n.oack.is_empty());
        assert_eq!(number("18446744073709551616", 0, u64::MAX), None);
        assert_eq!(number("+5", 0, 9), None);
    }
}
