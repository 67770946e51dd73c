//! What the benchmark binaries share: a keep-alive HTTP/1.1 load client ([`HttpConn`]), and
//! writing a result table into its own section of `docs/benchmarks.md`, between
//! `<!-- NAME:start -->` and `<!-- NAME:end -->`, so each bench refreshes its table in place
//! and leaves the rest of the file alone.

#![allow(dead_code)] // each bench binary uses its own subset

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

/// Replaces section `name` of docs/benchmarks.md with `table` (which must start with the
/// start marker and end with the end marker), appending it under `heading` if absent.
pub fn record_section(name: &str, heading: &str, table: &str) -> std::io::Result<()> {
    let start = format!("<!-- {name}:start -->");
    let end = format!("<!-- {name}:end -->");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks.md");
    let existing = fs::read_to_string(&path).unwrap_or_default();
    let updated = match (existing.find(&start), existing.find(&end)) {
        (Some(a), Some(b)) if a < b => format!(
            "{}{}{}",
            &existing[..a],
            table.trim_end(),
            &existing[b + end.len()..]
        ),
        _ => format!("{}\n\n## {heading}\n\n{table}", existing.trim_end()),
    };
    fs::write(&path, updated)?;
    println!("recorded in {}", path.display());
    Ok(())
}

/// One keep-alive HTTP/1.1 connection on loopback (the benches' load client).
pub struct HttpConn {
    port: u16,
    timeout: Duration,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// The server said `Connection: close`: reconnect before the next request.
    closed: bool,
}

impl HttpConn {
    pub fn connect(port: u16, timeout: Duration) -> std::io::Result<HttpConn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(HttpConn {
            port,
            timeout,
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            closed: false,
        })
    }

    /// Sends one request and reads its answer: status and body.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        if self.closed {
            *self = HttpConn::connect(self.port, self.timeout)?;
        }
        let mut message = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n\r\n",
            self.port,
            body.len()
        )
        .into_bytes();
        message.extend_from_slice(body);
        self.writer.write_all(&message)?;
        let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
        let mut length = None;
        let mut chunked = false;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(bad("connection closed in the headers".into()));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse::<usize>().ok();
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.eq_ignore_ascii_case("chunked");
                } else if name.eq_ignore_ascii_case("connection") {
                    self.closed = value.eq_ignore_ascii_case("close");
                }
            }
        }
        let mut answer = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk)?;
                if size == 0 {
                    break;
                }
                answer.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(length) = length {
            answer.resize(length, 0);
            self.reader.read_exact(&mut answer)?;
        } else if status != 204 && status != 304 {
            self.reader.read_to_end(&mut answer)?;
            self.closed = true;
        }
        Ok((status, answer))
    }
}
