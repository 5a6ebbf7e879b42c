//! Normalising any path from any working directory stays inside `/`.
#![no_main]

use aioftpd::path::VirtualPath;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (cwd, arg) = input;
    let path = VirtualPath::new(cwd).join(arg);
    let text = path.as_str();
    assert!(text.starts_with('/'));
    assert!(text == "/" || !text.ends_with('/'));
    assert!(path
        .components()
        .all(|c| !c.is_empty() && c != "." && c != ".."));
    assert_eq!(
        VirtualPath::new(text),
        path,
        "normalising twice changes nothing"
    );
});
