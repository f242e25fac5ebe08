//! The pxelinux menu with hostile ISO metadata: a `.treeinfo`, a volume id
//! and kernel arguments from the fuzzer. Whatever they hold (newlines,
//! quotes, directives), the menu keeps its shape: the same directives in the
//! same order, one line each, and boot.msg is one line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pxelab::boot::{self, BootOptions, DefaultEntry, Ui};
use pxelab::iso::{Distro, Family, Source, TreeInfo};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Three fields: .treeinfo text, volume id, kernel arguments, split on 0x1e.
    let mut parts = text.splitn(3, '\u{1e}');
    let treeinfo = TreeInfo::parse(parts.next().unwrap_or_default());
    let volume_id = parts.next().unwrap_or_default().to_string();
    let append = parts.next().unwrap_or_default().to_string();
    let (kernel, initrd) = treeinfo.kernel_initrd();
    let distro = Distro {
        family: Family::Rhel,
        name: treeinfo.get("release", "name").or(treeinfo.get("general", "family")).map(str::to_string).unwrap_or(volume_id.clone()),
        version: treeinfo.get("release", "version").map(str::to_string),
        arch: treeinfo.arch().map(str::to_string),
        kernel: kernel.unwrap_or("isolinux/vmlinuz").trim_start_matches('/').to_string(),
        initrd: initrd.unwrap_or("isolinux/initrd.img").trim_start_matches('/').to_string(),
        stage2: None,
        kernel_args: append.clone(),
        iso_args: None,
        volume_id,
        size_bytes: 0,
        source: Source::Treeinfo,
    };
    for ui in [Ui::Vesa, Ui::Text] {
        let options = BootOptions { append: distro.kernel_args.clone(), default: DefaultEntry::Install, ui };
        let Ok(menu) = boot::menu_for(&distro, &options) else { continue };
        let rendered = menu.render();
        let shape: Vec<&str> = rendered
            .lines()
            .map(|l| l.trim_start().split(' ').next().unwrap_or_default())
            .collect();
        assert_eq!(
            shape,
            ["SERIAL", "UI", "TIMEOUT", "DISPLAY", "MENU", "", "LABEL", "MENU", "LOCALBOOT", "", "LABEL", "MENU", "MENU", "KERNEL", "APPEND"],
            "menu shape changed:\n{rendered}"
        );
        assert!(!rendered.chars().any(|c| c.is_control() && c != '\n'), "control character in:\n{rendered:?}");
        assert_eq!(rendered.lines().filter(|l| l.trim() == "MENU DEFAULT").count(), 1);
        let welcome = menu.render_welcome();
        assert_eq!(welcome.lines().count(), 1, "{welcome:?}");
    }
});
