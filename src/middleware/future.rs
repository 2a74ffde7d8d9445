//! The response future of [`TokenAuth`](crate::TokenAuth).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use serde::de::DeserializeOwned;
use tower_service::Service;

use super::service::{finish, Admitted, Held};
use crate::response::Responder;

/// A check that waits for remote keys or a revocation store (boxed: it only exists on the
/// slow path).
pub(crate) type CheckFuture<T> = Pin<Box<dyn Future<Output = Admitted<T>> + Send + 'static>>;

pin_project! {
    /// The response future of [`TokenAuth`](crate::TokenAuth): the inner service's future, a
    /// ready rejection, or (with remote keys or a revocation store to ask) a check that waits.
    ///
    /// # Panics
    ///
    /// If polled again after it completed with a rejection (the `Future` contract).
    pub struct ResponseFuture<S, ReqBody, T, R>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        kind: Kind<S, ReqBody, T, R>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, ReqBody, T, R>
    where
        S: Service<Request<ReqBody>>,
    {
        Inner { #[pin] fut: S::Future },
        Rejected { response: Option<S::Response> },
        // Boxed: the request and the inner service are only held on the slow path, and the
        // future stays small (cheap to move) on the fast one.
        Checking { check: CheckFuture<T>, held: Option<Box<(S, Held<ReqBody, R>)>> },
    }
}

impl<S, ReqBody, T, R> ResponseFuture<S, ReqBody, T, R>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn inner(fut: S::Future) -> Self {
        ResponseFuture {
            kind: Kind::Inner { fut },
        }
    }

    pub(crate) fn rejected(response: S::Response) -> Self {
        ResponseFuture {
            kind: Kind::Rejected {
                response: Some(response),
            },
        }
    }

    pub(crate) fn checking(check: CheckFuture<T>, inner: S, held: Held<ReqBody, R>) -> Self {
        ResponseFuture {
            kind: Kind::Checking {
                check,
                held: Some(Box::new((inner, held))),
            },
        }
    }
}

impl<S, ReqBody, ResBody, T, R> Future for ResponseFuture<S, ReqBody, T, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    T: DeserializeOwned + Send + Sync + 'static,
    R: Responder<ResBody>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().kind.project() {
                KindProj::Inner { fut } => return fut.poll(cx),
                KindProj::Rejected { response } => {
                    return match response.take() {
                        Some(r) => Poll::Ready(Ok(r)),
                        // The `Future` contract, as the ecosystem's futures enforce it.
                        None => panic!("ResponseFuture polled after completion"),
                    };
                }
                KindProj::Checking { check, held } => {
                    let admitted = ready!(check.as_mut().poll(cx));
                    let Some(boxed) = held.take() else {
                        panic!("ResponseFuture polled after completion");
                    };
                    let (mut inner, held) = *boxed;
                    match finish(admitted, held, &mut inner) {
                        Ok(fut) => Kind::Inner { fut },
                        Err(response) => Kind::Rejected {
                            response: Some(response),
                        },
                    }
                }
            };
            self.as_mut().project().kind.set(next);
        }
    }
}

impl<S, ReqBody, T, R> std::fmt::Debug for ResponseFuture<S, ReqBody, T, R>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
