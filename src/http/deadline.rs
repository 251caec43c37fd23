//! How long a request may take: its body must arrive within the body
//! timeout, and its answer must be ready within the request timeout.
//!
//! Both answer with a GraphQL-shaped error coded `TIMEOUT`: 408 when the
//! client was too slow sending its body (the connection then closes, as
//! the rest of the body may still be on its way), 503 when the server was
//! too slow answering (a retry may succeed).

use std::future::Future;

use tokio::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{header, HeaderValue, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::{HttpError, Shared};
use crate::error::CrmError;

/// When a request that arrives now must be answered: its headers' arrival
/// plus the request timeout.
pub(super) fn request_deadline(app: &Shared) -> Instant {
    Instant::now() + app.config.request_timeout
}

/// Refuses with 503 `TIMEOUT` a request whose `work` (authenticating,
/// answering) is not done by `deadline` (the work on it stops): a stalled
/// database holds no request longer than the request timeout.
pub(super) async fn by_deadline<T>(
    app: &Shared,
    deadline: Instant,
    work: impl Future<Output = Result<T, HttpError>>,
) -> Result<T, HttpError> {
    let limit = app.config.request_timeout;
    tokio::time::timeout_at(deadline, work).await.unwrap_or_else(|_| {
        tracing::warn!(timeout_ms = limit.as_millis(), "request timed out");
        let message = format!(
            "the server did not answer within its request timeout of {} ms; try again, or ask for less",
            limit.as_millis()
        );
        Err(CrmError::Timeout(message).into())
    })
}

/// A request's whole body, read within the body timeout and up to the
/// body limit; the refusal otherwise.
pub(super) async fn read_body(app: &Shared, body: Body) -> Result<Bytes, HttpError> {
    let (limit, timeout) = (app.config.body_limit, app.config.body_timeout);
    let too_large = || {
        HttpError::bad_request(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than the server's limit of {limit} bytes"),
        )
    };
    // A declared length past the limit is refused before reading any of it.
    if usize::try_from(body.size_hint().lower()).map_or(true, |declared| declared > limit) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await;
    match read {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(err)) => Err(HttpError::bad_request(
            StatusCode::BAD_REQUEST,
            format!("the request body could not be read: {err}"),
        )),
        Err(_) => {
            let message = format!(
                "the request body did not arrive within the server's body timeout of {} ms",
                timeout.as_millis()
            );
            let refused = HttpError::new(StatusCode::REQUEST_TIMEOUT, CrmError::Timeout(message));
            Err(refused.with_header(header::CONNECTION, HeaderValue::from_static("close")))
        }
    }
}
