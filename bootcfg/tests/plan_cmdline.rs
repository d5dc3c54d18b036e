//! `plan --format cmdline`: only the kernel parameters, on one line, for
//! scripts such as `make demo`. It validates like `plan`, needs no
//! bootloader, and changes nothing.

mod common;

use common::*;

#[test]
fn reserve_mode_prints_one_line() {
    let t = machine("fmt-res");
    let before = t.snapshot();
    let out = t.ok(&[
        "plan", "--size", "16G", "--align", "2M", "--format", "cmdline",
    ]);
    assert_eq!(out, "reserve_mem=16G:2M:critmem\n");
    assert_eq!(diff_snapshots(&before, &t.snapshot()), Vec::<String>::new());
}

#[test]
fn default_alignment_matches_plan() {
    let t = debian("fmt-align");
    let out = t.ok(&["plan", "--size", "16G", "--format", "cmdline"]);
    assert_eq!(out, "reserve_mem=16G:1G:critmem\n");
    let text = t.ok(&["plan", "--size", "16G"]);
    assert!(
        text.contains("kernel parameters: reserve_mem=16G:1G:critmem\n"),
        "{text}"
    );
}

#[test]
fn memmap_mode_prints_every_word() {
    let t = machine("fmt-mm");
    let out = t.ok(&[
        "plan",
        "--size",
        "4G",
        "--mode",
        "memmap",
        "--base",
        "0x100000000",
        "--format",
        "cmdline",
    ]);
    assert_eq!(
        out,
        "memmap=4G$0x100000000 critmem.base=0x100000000 critmem.size=0x100000000\n"
    );
}

#[test]
fn validation_still_applies() {
    let t = machine("fmt-bad");
    let err = t.fails(&["plan", "--size", "60G", "--format", "cmdline"]);
    assert!(err.contains("--force"), "{err}");
    let out = t.ok(&["plan", "--size", "60G", "--force", "--format", "cmdline"]);
    assert_eq!(out, "reserve_mem=60G:1G:critmem\n");
    let err = t.fails(&[
        "plan", "--size", "1G", "--align", "3M", "--format", "cmdline",
    ]);
    assert!(err.contains("power of two"), "{err}");
}

#[test]
fn default_format_is_text() {
    let t = debian("fmt-text");
    assert_eq!(
        t.ok(&["plan", "--size", "16G", "--align", "1G", "--format", "text"]),
        t.ok(&["plan", "--size", "16G", "--align", "1G"])
    );
}
