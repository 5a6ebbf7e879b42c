//! placeholder
/// In-memory storage.
pub struct MemoryStorage;
