//! Fuzz bodies (filled in later).
