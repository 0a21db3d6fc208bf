//! `portvakt audit query` and `portvakt audit report` on real and generated logs.
