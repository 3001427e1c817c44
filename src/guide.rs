//! The long form: why the naive ways fail, how each calling context is
//! served, streams and IO, performance, and recipes.
//!
//! # How each calling context is served
//!
//! (being rewritten)
