//! `vc-bench measure` reports one command's wall time, CPU time and peak RSS, and passes its
//! exit status through.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use vc_bench::measure::{Usage, disk_usage};

fn measure(script: &str) -> (Option<i32>, Usage) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("usage.json");
    let status = Command::new(env!("CARGO_BIN_EXE_vc-bench"))
        .args(["measure", "--out"])
        .arg(&out)
        .args(["--", "sh", "-c", script])
        .status()
        .unwrap();
    let usage = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    (status.code(), usage)
}

#[test]
fn peak_rss_cpu_and_wall_of_one_child() {
    // 64 MiB held in a shell variable, some CPU, and a pause.
    let (code, big) = measure(
        "x=$(head -c 67108864 /dev/zero | tr '\\0' a); i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 0.3",
    );
    assert_eq!(code, Some(0));
    assert!(big.max_rss_bytes > 64 << 20, "{big:?}");
    assert!(big.wall_secs >= 0.3, "{big:?}");
    assert!(big.cpu_secs() > 0.0, "{big:?}");
    let (_, small) = measure("true");
    assert!(
        small.max_rss_bytes < big.max_rss_bytes / 4,
        "{small:?} vs {big:?}"
    );
}

#[test]
fn exit_status_passes_through() {
    let (code, _) = measure("exit 3");
    assert_eq!(code, Some(3));
}

#[test]
fn disk_usage_counts_allocated_blocks_of_a_tree() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("a"), vec![1u8; 100_000]).unwrap();
    std::fs::write(dir.path().join("sub/b"), vec![2u8; 50_000]).unwrap();
    let n = disk_usage(dir.path()).unwrap();
    assert!((150_000..250_000).contains(&n), "{n}");
}
