//! Every command line a client can send (PORT and EPRT arguments included)
//! parses to a command or an error reply; nothing panics.
#![no_main]

use aioftpd::session::Command;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    if let Err(err) = Command::parse(&line) {
        let code = err.0.code().number();
        assert!((500..=599).contains(&code), "{code}");
        // A reply to hostile input must not be able to inject another reply.
        assert_eq!(err.0.to_wire().matches("\r\n").count(), 1);
    }
});
