//! The API's error value: an HTTP status and a message, answered as `{"error": "..."}`.
//! Crate errors map onto it: bad input is the client's fault (400); a full disk is 507
//! (Insufficient Storage) and any other failed I/O 503 (the node cannot take writes now, try
//! again or another node); everything else is the node's (500). The node's errors are logged
//! with their context, and the message names the reason.

use super::Reply;
use crate::error::Error;
use crate::log_error;

/// A request that cannot be answered normally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }

    pub fn not_found(path: &str) -> ApiError {
        ApiError::new(404, format!("no such endpoint: {path}"))
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, message)
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(413, format!("request body larger than {limit} bytes"))
    }

    /// The answer; a 401 names the scheme to use in `WWW-Authenticate`.
    pub fn into_reply(self) -> Reply {
        let reply = Reply::error(self.status, &self.message);
        if self.status == 401 {
            reply.with_header("WWW-Authenticate", r#"Bearer realm="minitrue""#)
        } else {
            reply
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::InvalidInput { .. } => ApiError::bad_request(e.to_string()),
            Error::Io { ref source, .. } => {
                log_error!("request failed: {e}");
                let full = matches!(
                    source.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                );
                if full {
                    ApiError::new(507, format!("insufficient storage: {e}"))
                } else {
                    ApiError::unavailable(format!("storage unavailable: {e}"))
                }
            }
            other => {
                log_error!("request failed: {other}");
                ApiError::new(500, format!("internal error: {other}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_input_is_a_bad_request_naming_the_field() {
        let e = ApiError::from(Error::invalid("device_id", "must not be empty"));
        assert_eq!(e.status, 400);
        assert_eq!(e.message, "invalid device_id: must not be empty");
    }

    #[test]
    fn full_disk_is_507_and_other_io_failures_503_naming_the_file() {
        let full = std::io::Error::from_raw_os_error(28);
        let e = ApiError::from(Error::io("data/x.wal", full));
        assert_eq!(e.status, 507);
        assert!(e.message.contains("data/x.wal"), "{}", e.message);
        let eio = std::io::Error::from_raw_os_error(5);
        let e = ApiError::from(Error::io("data/x.wal", eio));
        assert_eq!(e.status, 503);
        assert!(e.message.contains("data/x.wal"), "{}", e.message);
    }

    #[test]
    fn corrupt_data_is_an_internal_error() {
        let e = ApiError::from(Error::corrupt("data/x.seg", 4096, "checksum mismatch"));
        assert_eq!(e.status, 500);
        assert!(e.message.contains("offset 4096"), "{}", e.message);
    }
}
