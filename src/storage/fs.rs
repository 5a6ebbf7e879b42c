//! placeholder
/// Local filesystem storage.
pub struct FsStorage;
