//! The middleware: [`TokenAuthLayer`] (the `Layer`, its builder methods), [`TokenAuth`] (the
//! `Service`: sources, validation, then the inner service or the responder) and
//! [`ResponseFuture`], laid out as tower-http lays out its middlewares.

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::TokenAuthLayer;
pub use service::TokenAuth;
