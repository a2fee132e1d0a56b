//! TFTP packets on the wire (RFC 1350, options from RFC 2347): what the
//! server reads (requests, ACK, ERROR) and what it writes (DATA, OACK,
//! ERROR). Pure and allocation-light: DATA is written into a caller's buffer.

/// The longest request the server reads. RFC 1350 keeps packets within 512
/// bytes of payload; firmware with every option set stays well under this,
/// so anything longer is refused as malformed instead of parsed.
pub const MAX_REQUEST: usize = 1024;

/// At most this many option pairs are read from a request; a flood of them
/// is refused (real clients send at most five).
pub const MAX_OPTIONS: usize = 16;

pub const OP_RRQ: u16 = 1;
pub const OP_WRQ: u16 = 2;
pub const OP_DATA: u16 = 3;
pub const OP_ACK: u16 = 4;
pub const OP_ERROR: u16 = 5;
pub const OP_OACK: u16 = 6;

/// RFC 1350 error codes (and 8 from RFC 2347).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    NotDefined = 0,
    FileNotFound = 1,
    AccessViolation = 2,
    IllegalOperation = 4,
    UnknownTid = 5,
    OptionRefused = 8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Octet,
    Netascii,
}

/// A read request: the file, the transfer mode and the options in the order
/// sent (names lower-cased; values as sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    pub filename: String,
    pub mode: Mode,
    pub options: Vec<(String, String)>,
}

/// What a packet to the server's port 69 asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Read(ReadRequest),
    /// A write request: refused, the server is read-only.
    Write(String),
}

/// Why a request was not understood; the text goes into the ERROR packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("request too long (more than {MAX_REQUEST} bytes)")]
    TooLong,
    #[error("packet too short")]
    TooShort,
    #[error("opcode {0} is not a request")]
    NotARequest(u16),
    #[error("a field is not terminated by a zero byte")]
    Unterminated,
    #[error("a field is not UTF-8")]
    NotUtf8,
    #[error("empty file name")]
    EmptyName,
    #[error("transfer mode {0:?} is not supported (use octet or netascii)")]
    Mode(String),
    #[error("more than {MAX_OPTIONS} options")]
    TooManyOptions,
    #[error("option {0:?} has no value")]
    OptionWithoutValue(String),
}

/// Parse what arrived on port 69.
pub fn parse_request(buf: &[u8]) -> Result<Request, Malformed> {
    if buf.len() > MAX_REQUEST {
        return Err(Malformed::TooLong);
    }
    if buf.len() < 4 {
        return Err(Malformed::TooShort);
    }
    let op = u16::from_be_bytes([buf[0], buf[1]]);
    if op != OP_RRQ && op != OP_WRQ {
        return Err(Malformed::NotARequest(op));
    }
    let mut fields = Fields { rest: &buf[2..] };
    let filename = fields.next()?.ok_or(Malformed::TooShort)?;
    if filename.is_empty() {
        return Err(Malformed::EmptyName);
    }
    let mode_text = fields.next()?.ok_or(Malformed::TooShort)?;
    if op == OP_WRQ {
        return Ok(Request::Write(filename.to_string()));
    }
    let mode = match mode_text.to_ascii_lowercase().as_str() {
        "octet" => Mode::Octet,
        "netascii" => Mode::Netascii,
        _ => return Err(Malformed::Mode(mode_text.to_string())),
    };
    let mut options = Vec::new();
    while let Some(name) = fields.next()? {
        // Some clients pad the request with zero bytes after the last field.
        if name.is_empty() && fields.rest.iter().all(|&b| b == 0) {
            break;
        }
        let value = fields
            .next()?
            .ok_or_else(|| Malformed::OptionWithoutValue(name.to_string()))?;
        if options.len() == MAX_OPTIONS {
            return Err(Malformed::TooManyOptions);
        }
        options.push((name.to_ascii_lowercase(), value.to_string()));
    }
    Ok(Request::Read(ReadRequest {
        filename: filename.to_string(),
        mode,
        options,
    }))
}

/// Zero-terminated strings one after the other.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn next(&mut self) -> Result<Option<&'a str>, Malformed> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let end = self
            .rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(Malformed::Unterminated)?;
        let field = std::str::from_utf8(&self.rest[..end]).map_err(|_| Malformed::NotUtf8)?;
        self.rest = &self.rest[end + 1..];
        Ok(Some(field))
    }
}

/// What a client sends during a transfer.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Ack(u16),
    /// The client gave up (code 8 after an OACK is the PXE tsize probe).
    Error(u16, String),
    /// Anything else: ignored, the transfer's timer keeps running.
    Other,
}

pub fn parse_reply(buf: &[u8]) -> Reply {
    if buf.len() < 4 {
        return Reply::Other;
    }
    let op = u16::from_be_bytes([buf[0], buf[1]]);
    let n = u16::from_be_bytes([buf[2], buf[3]]);
    match op {
        OP_ACK => Reply::Ack(n),
        OP_ERROR => {
            let text = &buf[4..];
            let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
            Reply::Error(n, String::from_utf8_lossy(&text[..end]).into_owned())
        }
        _ => Reply::Other,
    }
}

pub fn error(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(5 + message.len());
    p.extend_from_slice(&OP_ERROR.to_be_bytes());
    p.extend_from_slice(&(code as u16).to_be_bytes());
    // A zero byte inside the text would end it early for the client.
    p.extend(message.bytes().filter(|&b| b != 0));
    p.push(0);
    p
}

pub fn oack(options: &[(&str, String)]) -> Vec<u8> {
    let mut p = OP_OACK.to_be_bytes().to_vec();
    for (name, value) in options {
        p.extend_from_slice(name.as_bytes());
        p.push(0);
        p.extend_from_slice(value.as_bytes());
        p.push(0);
    }
    p
}

/// Write the DATA header for `block` into `buf[..4]`; the caller fills the rest.
pub fn data_header(buf: &mut [u8], block: u16) {
    buf[..2].copy_from_slice(&OP_DATA.to_be_bytes());
    buf[2..4].copy_from_slice(&block.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrq(fields: &[&str]) -> Vec<u8> {
        let mut p = OP_RRQ.to_be_bytes().to_vec();
        for f in fields {
            p.extend_from_slice(f.as_bytes());
            p.push(0);
        }
        p
    }

    #[test]
    fn read_request_with_options() {
        let p = rrq(&["pxelinux.0", "OCTET", "tsize", "0", "BLKSIZE", "1468"]);
        assert_eq!(
            parse_request(&p),
            Ok(Request::Read(ReadRequest {
                filename: "pxelinux.0".into(),
                mode: Mode::Octet,
                options: vec![
                    ("tsize".into(), "0".into()),
                    ("blksize".into(), "1468".into())
                ],
            }))
        );
    }

    #[test]
    fn padding_after_the_last_field_is_ignored() {
        let mut p = rrq(&["a", "netascii"]);
        p.extend_from_slice(&[0, 0, 0]);
        let Ok(Request::Read(r)) = parse_request(&p) else {
            panic!()
        };
        assert_eq!(r.mode, Mode::Netascii);
        assert!(r.options.is_empty());
    }

    #[test]
    fn write_requests_are_recognised_to_be_refused() {
        let mut p = rrq(&["x", "octet"]);
        p[1] = OP_WRQ as u8;
        assert_eq!(parse_request(&p), Ok(Request::Write("x".into())));
    }

    #[test]
    fn malformed_requests() {
        assert_eq!(parse_request(&[0, 1]), Err(Malformed::TooShort));
        assert_eq!(parse_request(&[0, 4, 0, 1]), Err(Malformed::NotARequest(4)));
        assert_eq!(parse_request(b"\0\x01abc"), Err(Malformed::Unterminated));
        assert_eq!(
            parse_request(&rrq(&["", "octet"])),
            Err(Malformed::EmptyName)
        );
        assert_eq!(parse_request(&rrq(&["a"])), Err(Malformed::TooShort));
        assert_eq!(
            parse_request(&rrq(&["a", "mail"])),
            Err(Malformed::Mode("mail".into()))
        );
        assert_eq!(
            parse_request(&rrq(&["a", "octet", "blksize"])),
            Err(Malformed::OptionWithoutValue("blksize".into()))
        );
        let mut p = OP_RRQ.to_be_bytes().to_vec();
        p.extend_from_slice(&[0xff, 0xfe, 0]);
        p.extend_from_slice(b"octet\0");
        assert_eq!(parse_request(&p), Err(Malformed::NotUtf8));
        assert_eq!(
            parse_request(&vec![0; MAX_REQUEST + 1]),
            Err(Malformed::TooLong)
        );
    }

    #[test]
    fn option_floods_are_refused() {
        let mut f = vec!["a", "octet"];
        for _ in 0..=MAX_OPTIONS {
            f.extend(["x", "1"]);
        }
        assert_eq!(parse_request(&rrq(&f)), Err(Malformed::TooManyOptions));
    }

    #[test]
    fn replies() {
        assert_eq!(parse_reply(&[0, 4, 1, 2]), Reply::Ack(0x102));
        assert_eq!(
            parse_reply(b"\0\x05\0\x08tsize only\0"),
            Reply::Error(8, "tsize only".into())
        );
        assert_eq!(parse_reply(&[0, 3, 0, 1, 9]), Reply::Other);
        assert_eq!(parse_reply(&[0, 4, 1]), Reply::Other);
    }

    #[test]
    fn written_packets() {
        assert_eq!(
            error(ErrorCode::FileNotFound, "no\0pe"),
            b"\0\x05\0\x01nope\0".to_vec()
        );
        assert_eq!(
            oack(&[("tsize", "42".into()), ("blksize", "1468".into())]),
            b"\0\x06tsize\x0042\0blksize\x001468\0".to_vec()
        );
        let mut b = [9u8; 6];
        data_header(&mut b, 258);
        assert_eq!(b, [0, 3, 1, 2, 9, 9]);
    }
}
