//! How a request fails, as one typed value from the loader and the engine to the HTTP status.
//!
//! Every layer above the engine (the job handler, completion events, the origin, the CLI)
//! decides what to do with a failure by its [`ErrorKind`] alone: whether to retry, whether to
//! cache an error result, which HTTP status to answer. Nothing matches message text. The
//! message is written once, where the failure is found, and the underlying error is kept as
//! the [`std::error::Error::source`], never rewritten.

use std::sync::Arc;

use opossum_image::ImageError;

use crate::Provenance;

/// What kind of failure a request met: decides retries, error results and HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request itself is invalid (a chain, an option, an image id). HTTP 400.
    BadRequest,
    /// The original does not exist. HTTP 404.
    NotFound,
    /// The image cannot be processed as asked (corrupt, over a limit, an operation that cannot
    /// apply). Cached as an error result for 5 minutes. HTTP 422.
    BadImage,
    /// Something outside the request failed and may work later (the originals store or Redis
    /// timing out, a render deadline on a loaded machine). Retried. HTTP 503.
    Transient,
    /// A bug. Retried like a transient failure (it may be one), never cached. HTTP 500.
    Internal,
}

impl ErrorKind {
    /// Every kind, for tables and tests.
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::BadRequest,
        ErrorKind::NotFound,
        ErrorKind::BadImage,
        ErrorKind::Transient,
        ErrorKind::Internal,
    ];

    /// True when the same request will fail the same way again: no retry.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            ErrorKind::BadRequest | ErrorKind::NotFound | ErrorKind::BadImage
        )
    }

    /// The snake_case name events and JSON use.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::NotFound => "not_found",
            ErrorKind::BadImage => "bad_image",
            ErrorKind::Transient => "transient",
            ErrorKind::Internal => "internal",
        }
    }

    /// The kind named `name` ([`ErrorKind::name`]).
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// The kind of an engine failure: a render deadline is the machine's load, not the
    /// input's fault; `Internal` is a bug; everything else is the image.
    pub fn of_image(error: &ImageError) -> ErrorKind {
        match error {
            ImageError::SvgTimeout { .. } => ErrorKind::Transient,
            ImageError::Internal { .. } => ErrorKind::Internal,
            _ => ErrorKind::BadImage,
        }
    }
}

/// The shared form of an underlying error: failures are shared between coalesced requests.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why a request failed: a kind, the message (lowercase, naming the value) and the underlying
/// error it came from, if any.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct PipelineError {
    kind: ErrorKind,
    message: String,
    #[source]
    cause: Option<Cause>,
    provenance: Option<Provenance>,
}

impl PipelineError {
    /// A failure of `kind` described by `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> PipelineError {
        PipelineError {
            kind,
            message: message.into(),
            cause: None,
            provenance: None,
        }
    }

    /// A failure of `kind` whose message is `cause`'s, kept as the source.
    pub fn from_cause(
        kind: ErrorKind,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> PipelineError {
        PipelineError {
            kind,
            message: cause.to_string(),
            cause: Some(Arc::new(cause)),
            provenance: None,
        }
    }

    /// An engine failure, classified by [`ErrorKind::of_image`].
    pub fn from_image(error: ImageError) -> PipelineError {
        PipelineError::from_cause(ErrorKind::of_image(&error), error)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, as first reported.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same failure with `context` before its message (`loading a.jpg: ...`).
    pub fn context(mut self, context: impl std::fmt::Display) -> PipelineError {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// Where the failure was answered from: the tier that held a remembered error result, or
    /// computed now; `None` when no lookup or computation answered (a load that failed).
    pub fn provenance(&self) -> Option<Provenance> {
        self.provenance
    }

    /// The same failure, answered from `provenance`.
    pub fn answered_by(mut self, provenance: Provenance) -> PipelineError {
        self.provenance = Some(provenance);
        self
    }

    /// True when retrying the same request cannot succeed.
    pub fn is_permanent(&self) -> bool {
        self.kind.is_permanent()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_by_name_and_only_request_and_input_faults_are_permanent() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(kind.name()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
        }
        let permanent: Vec<_> = ErrorKind::ALL
            .into_iter()
            .filter(|k| k.is_permanent())
            .collect();
        assert_eq!(
            permanent,
            [
                ErrorKind::BadRequest,
                ErrorKind::NotFound,
                ErrorKind::BadImage
            ]
        );
    }

    #[test]
    fn a_render_deadline_is_transient_and_a_corrupt_image_is_not() {
        let deadline = PipelineError::from_image(ImageError::SvgTimeout { seconds: 10 });
        assert_eq!(deadline.kind(), ErrorKind::Transient);
        let corrupt = PipelineError::from_image(ImageError::UnknownFormat { magic: "00".into() });
        assert_eq!(corrupt.kind(), ErrorKind::BadImage);
        assert!(std::error::Error::source(&corrupt).is_some());
    }
}
