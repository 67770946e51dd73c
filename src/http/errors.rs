//! The API's error value: an HTTP status and a message, answered as `{"error": "..."}`.
//! Crate errors map onto it: bad input is the client's fault (400), everything else is the
//! node's (500, logged with its context).

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
    fn storage_failure_is_an_internal_error() {
        let io = std::io::Error::other("disk on fire");
        let e = ApiError::from(Error::io("data/x.wal", io));
        assert_eq!(e.status, 500);
        assert!(e.message.contains("data/x.wal"), "{}", e.message);
    }
}
