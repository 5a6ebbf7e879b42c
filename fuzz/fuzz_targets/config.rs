//! Any config text loads or yields errors naming where; nothing panics.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(err) = aioftpd::config::load_str(&text, Path::new("fuzz.toml")) {
        assert!(!err.to_string().is_empty());
    }
});
