//! `cmtool`: skeleton.
fn main() {}
