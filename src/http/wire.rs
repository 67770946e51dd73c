//! HTTP/1.1 on the wire (RFC 9112), only as much as the node serves: the request head
//! (method, target, version, headers) parsed from bytes under fixed limits, the body's
//! framing (`Content-Length` or `chunked`), and the answer's status line and headers.
//!
//! Everything here is pure: bytes in, values or a [`WireError`] out, so the parser is unit-
//! and property-tested without sockets. The connection layer ([`super::listener`]) decides
//! when bytes arrive; the workers ([`super::http_serve`]) decide what to answer.
//!
//! Choices where the RFC leaves room, as nginx and Go's net/http make them: a head is at
//! most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] fields (431 beyond); a bare LF ends a line
//! like CRLF does; a request with both `Transfer-Encoding` and `Content-Length`, or two
//! different lengths, is refused (400: the classic request-smuggling shapes); a transfer
//! coding other than `chunked` is 501.

use std::fmt;
use std::io::{self, BufRead, Read, Write};

/// Largest request head (request line and header fields) accepted.
pub const MAX_HEAD: usize = 16 * 1024;

/// Most header fields in one request.
pub const MAX_HEADERS: usize = 100;

/// Longest chunk-size line of a chunked body (hex size and extensions).
const MAX_CHUNK_LINE: usize = 256;

/// A request method. The node's endpoints use the named ones; anything else is kept
/// verbatim so the router can answer 405 naming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Other(String),
}

impl Method {
    /// The method named by a request line's first word.
    pub fn parse(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Other(name) => name,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why bytes are not an acceptable request: the status to answer and a message naming
/// what is wrong. The connection is closed after the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError {
    pub status: u16,
    pub message: String,
}

impl WireError {
    fn new(status: u16, message: impl Into<String>) -> WireError {
        WireError {
            status,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> WireError {
        WireError::new(400, message)
    }
}

/// How the request's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length: n` (no header at all is a length of 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub method: Method,
    /// The request target as sent: origin form, `/path?query`.
    pub target: String,
    /// HTTP/1.0 (connections close after each answer unless asked otherwise).
    pub http10: bool,
    /// Field names and values in order, values trimmed.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of field `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a comma-separated field `name` lists `token` (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the client wants the connection kept open after the answer.
    pub fn keep_alive(&self) -> bool {
        if self.has_token("Connection", "close") {
            return false;
        }
        !self.http10 || self.has_token("Connection", "keep-alive")
    }

    /// Whether the client waits for `100 Continue` before sending its body.
    pub fn expects_continue(&self) -> bool {
        !self.http10
            && self
                .header("Expect")
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    }

    /// The body's framing, or why it is ambiguous or unsupported.
    pub fn framing(&self) -> Result<Framing, WireError> {
        let mut codings = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Transfer-Encoding"))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .peekable();
        let chunked = match codings.next() {
            None => false,
            Some(first) if first.eq_ignore_ascii_case("chunked") && codings.peek().is_none() => {
                true
            }
            Some(_) => {
                return Err(WireError::new(
                    501,
                    "Transfer-Encoding: only 'chunked' is supported",
                ))
            }
        };
        let mut length: Option<u64> = None;
        for (_, value) in self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
        {
            for part in value.split(',').map(str::trim) {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(WireError::bad(format!(
                        "Content-Length {value:?} is not a number of bytes"
                    )));
                }
                let n: u64 = part.parse().map_err(|_| {
                    WireError::bad(format!("Content-Length {value:?} is too large"))
                })?;
                if length.is_some_and(|l| l != n) {
                    return Err(WireError::bad(
                        "Content-Length given twice with different values",
                    ));
                }
                length = Some(n);
            }
        }
        match (chunked, length) {
            (true, Some(_)) => Err(WireError::bad(
                "Content-Length and Transfer-Encoding together are refused",
            )),
            (true, None) => Ok(Framing::Chunked),
            (false, length) => Ok(Framing::Length(length.unwrap_or(0))),
        }
    }
}

/// Where the head in `buf` ends (the index after its blank line), if it is complete.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(offset) = buf[i..].iter().position(|&b| b == b'\n') {
        let lf = i + offset;
        // A blank line: "\n\n" or "\n\r\n".
        match buf.get(lf + 1) {
            Some(b'\n') => return Some(lf + 2),
            Some(b'\r') if buf.get(lf + 2) == Some(&b'\n') => return Some(lf + 3),
            _ => i = lf + 1,
        }
    }
    None
}

/// Parses a complete head (as delimited by [`head_end`]).
pub fn parse_head(bytes: &[u8]) -> Result<Head, WireError> {
    if bytes.len() > MAX_HEAD {
        return Err(WireError::new(
            431,
            format!("request head longer than {MAX_HEAD} bytes"),
        ));
    }
    let text =
        std::str::from_utf8(bytes).map_err(|_| WireError::bad("request head is not UTF-8 text"))?;
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        // RFC 9112 §2.2: empty lines before the request line are ignored.
        .skip_while(|l| l.is_empty());
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(WireError::bad(format!(
            "malformed request line {:?}",
            truncated(request_line)
        )));
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(WireError::bad(format!(
            "malformed method {:?}",
            truncated(method)
        )));
    }
    if !target.starts_with('/') && target != "*" {
        return Err(WireError::bad(format!(
            "request target {:?} must be a path starting with '/'",
            truncated(target)
        )));
    }
    if target.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(WireError::bad("request target holds control characters"));
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        other => {
            return Err(WireError::new(
                505,
                format!(
                    "HTTP version {:?} is not supported (HTTP/1.1 is)",
                    truncated(other)
                ),
            ))
        }
    };
    let mut headers = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        if headers.len() == MAX_HEADERS {
            return Err(WireError::new(
                431,
                format!("more than {MAX_HEADERS} header fields"),
            ));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(WireError::bad(format!(
                "malformed header line {:?}",
                truncated(line)
            )));
        };
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            // Also refuses obsolete line folding (a line starting with a space).
            return Err(WireError::bad(format!(
                "malformed header name {:?}",
                truncated(name)
            )));
        }
        let value = value.trim_matches([' ', '\t']);
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(WireError::bad(format!(
                "header {name} holds control characters"
            )));
        }
        headers.push((name.to_owned(), value.to_owned()));
    }
    Ok(Head {
        method: Method::parse(method),
        target: target.to_owned(),
        http10,
        headers,
    })
}

/// RFC 9110 `tchar`: the bytes of methods and field names.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// At most 64 characters of `text`, for error messages.
fn truncated(text: &str) -> &str {
    match text.char_indices().nth(64) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// Reads a body framed as `framing` from `reader`, refusing (413, without reading on) one
/// longer than `limit`. `Err` carries the status and message for the client; an I/O error
/// or timeout is a 400 or 408 the client will rarely see.
pub fn read_body(
    reader: &mut impl BufRead,
    framing: Framing,
    limit: usize,
) -> Result<Vec<u8>, WireError> {
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    match framing {
        Framing::Length(n) if n > limit_u64 => Err(too_large(limit)),
        Framing::Length(n) => {
            let mut body = Vec::with_capacity(usize::try_from(n).unwrap_or(limit));
            reader
                .take(n)
                .read_to_end(&mut body)
                .map_err(body_io_error)?;
            if (body.len() as u64) < n {
                return Err(WireError::bad(format!(
                    "body ended after {} of its {n} bytes",
                    body.len()
                )));
            }
            Ok(body)
        }
        Framing::Chunked => read_chunked(reader, limit),
    }
}

fn read_chunked(reader: &mut impl BufRead, limit: usize) -> Result<Vec<u8>, WireError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| WireError::bad(format!("malformed chunk size {:?}", truncated(&line))))?;
        if size == 0 {
            // Trailer fields, ignored, up to the blank line.
            let mut trailers = 0;
            while !read_line(reader)?.is_empty() {
                trailers += 1;
                if trailers > MAX_HEADERS {
                    return Err(WireError::new(431, "too many trailer fields"));
                }
            }
            return Ok(body);
        }
        if body.len().saturating_add(size) > limit {
            return Err(too_large(limit));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader
            .read_exact(&mut body[start..])
            .map_err(body_io_error)?;
        if !read_line(reader)?.is_empty() {
            return Err(WireError::bad("chunk data not followed by CRLF"));
        }
    }
}

/// One line of a chunked body, without its line end, at most [`MAX_CHUNK_LINE`] bytes.
fn read_line(reader: &mut impl BufRead) -> Result<String, WireError> {
    let mut line = Vec::new();
    reader
        .take(MAX_CHUNK_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(body_io_error)?;
    if line.last() != Some(&b'\n') {
        return Err(if line.len() > MAX_CHUNK_LINE {
            WireError::bad("chunk-size line too long")
        } else {
            WireError::bad("body ended inside a chunk-size line")
        });
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| WireError::bad("chunk-size line is not text"))
}

fn too_large(limit: usize) -> WireError {
    WireError::new(413, format!("request body larger than {limit} bytes"))
}

fn body_io_error(e: io::Error) -> WireError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            WireError::new(408, "timed out reading the request body")
        }
        _ => WireError::bad(format!("cannot read request body: {e}")),
    }
}

/// The reason phrase of `status`.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "",
    }
}

/// Writes an answer: status line, `headers` (names and values were checked by the
/// caller to hold no CR or LF), `Content-Length`, `Connection` and, unless `head_only`,
/// the body.
pub fn write_response(
    out: &mut impl Write,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
    head_only: bool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        if is_safe_field(name) && is_safe_field(value) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    if status != 204 && !(100..200).contains(&status) {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut message = head.into_bytes();
    if !head_only {
        message.extend_from_slice(body);
    }
    out.write_all(&message)?;
    out.flush()
}

/// Text that cannot break out of its header line.
fn is_safe_field(text: &str) -> bool {
    !text.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Head, WireError> {
        let bytes = text.as_bytes();
        let end = head_end(bytes).expect("complete head");
        parse_head(&bytes[..end])
    }

    #[test]
    fn a_plain_get_parses() {
        let h = head("GET /query?x=1 HTTP/1.1\r\nHost: a\r\nX-Y:  b \r\n\r\n").unwrap();
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.target, "/query?x=1");
        assert!(!h.http10);
        assert_eq!(h.header("host"), Some("a"));
        assert_eq!(h.header("x-y"), Some("b"));
        assert!(h.keep_alive());
        assert_eq!(h.framing(), Ok(Framing::Length(0)));
    }

    #[test]
    fn head_end_finds_crlf_and_bare_lf_blank_lines() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nrest"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
        assert_eq!(head_end(b""), None);
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap()
            .keep_alive());
        assert!(!head("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive());
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .keep_alive());
    }

    #[test]
    fn malformed_heads_are_refused_with_the_right_status() {
        for (text, status) in [
            ("GET /\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\n\r\n", 505),
            ("GET http://x/ HTTP/1.1\r\n\r\n", 400),
            ("G(T / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n folded: x\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400),
        ] {
            assert_eq!(head(text).unwrap_err().status, status, "{text:?}");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let text = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(head(&text).unwrap_err().status, 431);
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(head(&long).unwrap_err().status, 431);
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let framing = |headers: &str| {
            head(&format!("POST / HTTP/1.1\r\n{headers}\r\n"))
                .unwrap()
                .framing()
        };
        assert_eq!(framing("Content-Length: 5\r\n"), Ok(Framing::Length(5)));
        assert_eq!(
            framing("Content-Length: 5\r\nContent-Length: 5\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            framing("Transfer-Encoding: chunked\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            framing("Content-Length: 5\r\nContent-Length: 6\r\n")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(framing("Content-Length: -1\r\n").unwrap_err().status, 400);
        assert_eq!(
            framing("Content-Length: 99999999999999999999999\r\n")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            framing("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            framing("Transfer-Encoding: gzip, chunked\r\n")
                .unwrap_err()
                .status,
            501
        );
    }

    #[test]
    fn bodies_are_read_by_length_and_by_chunks() {
        let mut input: &[u8] = b"hello world";
        assert_eq!(
            read_body(&mut input, Framing::Length(5), 100).unwrap(),
            b"hello"
        );
        assert_eq!(
            input, b" world",
            "bytes after the body stay for the next request"
        );
        let mut input: &[u8] = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\nnext";
        assert_eq!(
            read_body(&mut input, Framing::Chunked, 100).unwrap(),
            b"hello world"
        );
        assert_eq!(input, b"next");
    }

    #[test]
    fn bodies_over_the_limit_or_cut_short_are_refused() {
        let mut input: &[u8] = b"hello";
        assert_eq!(
            read_body(&mut input, Framing::Length(6), 100)
                .unwrap_err()
                .status,
            400
        );
        let mut input: &[u8] = b"";
        assert_eq!(
            read_body(&mut input, Framing::Length(101), 100)
                .unwrap_err()
                .status,
            413
        );
        let mut input: &[u8] = b"65\r\n";
        assert_eq!(
            read_body(&mut input, Framing::Chunked, 100)
                .unwrap_err()
                .status,
            413
        );
        let mut input: &[u8] = b"zz\r\n";
        assert_eq!(
            read_body(&mut input, Framing::Chunked, 100)
                .unwrap_err()
                .status,
            400
        );
        let mut input: &[u8] = b"5\r\nhelloXX0\r\n\r\n";
        assert_eq!(
            read_body(&mut input, Framing::Chunked, 100)
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn responses_carry_length_and_connection_and_drop_unsafe_headers() {
        let mut out = Vec::new();
        write_response(
            &mut out,
            200,
            &[
                ("Content-Type", "application/json"),
                ("X-Evil", "a\r\nSet-Cookie: b"),
            ],
            b"{}",
            true,
            false,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\
             Connection: keep-alive\r\n\r\n{}"
        );
        let mut out = Vec::new();
        write_response(&mut out, 204, &[], b"", false, false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
        );
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic_the_parser(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                if let Some(end) = head_end(&bytes) {
                    if let Ok(head) = parse_head(&bytes[..end]) {
                        let _ = head.framing();
                        let _ = head.keep_alive();
                    }
                }
                let mut input: &[u8] = &bytes;
                let _ = read_body(&mut input, Framing::Chunked, 1024);
            }
        }
    }
}
