//! The network XML patcher on arbitrary XML: no panic; when adding a bootp
//! succeeds on a network that had none, the result carries exactly that
//! bootp and removing it gives the input back byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pxelab::virt::netxml::{self, Bootp};

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else { return };
    let _ = netxml::parse(xml);
    let had = netxml::bootp_of(xml);
    let bootp = Bootp { file: "pxelinux.0".into(), server: Some("10.0.0.1".into()) };
    let Ok(patched) = netxml::set_bootp(xml, &bootp) else { return };
    assert_eq!(netxml::bootp_of(&patched), Some(bootp.clone()), "patched XML lacks the bootp:\n{patched}");
    // Patching twice changes nothing more.
    assert_eq!(netxml::set_bootp(&patched, &bootp).as_deref(), Ok(patched.as_str()));
    if had.is_none() {
        let restored = netxml::remove_bootp(&patched).expect("our own output parses");
        assert_eq!(restored, xml, "remove(set(x)) != x");
    }
});
