//! What is the request: the one path it is routed, checked and forwarded
//! with, and the headers it may carry (SECURITY.md "What is the request").
//! Both run before routing, on every request.
//!
//! - [`path`]: RFC 3986 normalisation, refusing ambiguous spellings.
//! - [`headers`]: size limits (431) and the headers an upstream never sees.

pub mod headers;
pub mod path;
