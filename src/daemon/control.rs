//! The daemon's control socket: one request line in, one JSON document out.
//! `headnode status`, `leases` and `reload` talk to the running daemon here,
//! and `plan` and `apply` ask it for its health checks' view (`health`).
//! The socket is created mode 0600 in a root-only directory.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Request {
    Status,
    Leases,
    Health,
    Reload,
}

impl Request {
    pub fn parse(line: &str) -> Option<Request> {
        match line.trim() {
            "status" => Some(Request::Status),
            "leases" => Some(Request::Leases),
            "health" => Some(Request::Health),
            "reload" => Some(Request::Reload),
            _ => None,
        }
    }
    fn word(self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Leases => "leases",
            Request::Health => "health",
            Request::Reload => "reload",
        }
    }
}

/// Ask the running daemon; `Ok(None)` when no daemon listens at `socket`.
pub fn ask(socket: &Path, req: Request) -> std::io::Result<Option<serde_json::Value>> {
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    writeln!(stream, "{}", req.word())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    let value = serde_json::from_str(&line).map_err(std::io::Error::other)?;
    Ok(Some(value))
}
