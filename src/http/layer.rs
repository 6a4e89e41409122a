//! The one layer every request passes through, as a tower service of its own: what it
//! does is [`context::start`] and [`context::Started::finish`]; this file is only how.
//!
//! Not `axum::middleware::from_fn`: for every request, that clones the boxed services
//! beneath it, boxes a `Next`, and boxes the async function's future, which holds the
//! whole request. Here the service beneath is called directly (it was made ready by
//! `poll_ready`, which this one passes on), and its future is wrapped in place, with no
//! allocation of this layer's own (axum's `Route` beneath still clones and boxes). A
//! query's whole HTTP path is a few tens of microseconds, and the layers were a
//! measurable part of it (docs/PERFORMANCE.md, "Queries").

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::instrument::Instrumented;
use tracing::Instrument;

use super::context::{self, Started};

/// Puts a service behind [`EveryRequest`].
#[derive(Clone, Copy, Debug, Default)]
pub struct EveryRequestLayer;

impl<S> Layer<S> for EveryRequestLayer {
    type Service = EveryRequest<S>;

    fn layer(&self, inner: S) -> EveryRequest<S> {
        EveryRequest { inner }
    }
}

/// A service whose every request is started and finished by [`context`].
#[derive(Clone, Debug)]
pub struct EveryRequest<S> {
    inner: S,
}

impl<S> Service<Request> for EveryRequest<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let (started, refused) = context::start(&mut req);
        let reply = match refused {
            Some(response) => Reply::Refused {
                response: Some(response),
            },
            None => {
                let span = started.span().clone();
                let future = span.in_scope(|| self.inner.call(req));
                Reply::Served {
                    future: future.instrument(span),
                }
            }
        };
        Answer {
            reply,
            started: Some(started),
        }
    }
}

pin_project! {
    /// The answer of an [`EveryRequest`], finished on its way out.
    pub struct Answer<F> {
        #[pin]
        reply: Reply<F>,
        started: Option<Started>,
    }
}

pin_project! {
    /// Where the answer comes from: the service beneath, or the refusal made at the start.
    #[project = ReplyProjection]
    enum Reply<F> {
        Served { #[pin] future: Instrumented<F> },
        Refused { response: Option<Response> },
    }
}

impl<F> Future for Answer<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.reply.project() {
            ReplyProjection::Served { future } => match ready!(future.poll(cx)) {
                Ok(response) => response,
                Err(never) => match never {},
            },
            ReplyProjection::Refused { response } => response
                .take()
                .expect("an answer is polled once it is ready"),
        };
        let started = this
            .started
            .take()
            .expect("an answer is polled once it is ready");
        Poll::Ready(Ok(started.finish(response)))
    }
}
