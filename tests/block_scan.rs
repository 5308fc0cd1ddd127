//! A scan reads its source exactly once: the process's read byte count (/proc/self/io rchar)
//! grows by the source's size, not by a multiple of it. Alone in its test binary so no other
//! test's reads are counted.

use ferry::block::{scan, HashAlgo};

fn rchar() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("rchar in /proc/self/io")
}

#[test]
fn a_scan_reads_the_source_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let size = 48u64 << 20;
    std::fs::write(&path, vec![0x5a; size as usize]).unwrap();
    for chunk in [4096u32, 65536, 1 << 20] {
        let before = rchar();
        let (m, stats) = scan(&path, chunk, HashAlgo::Blake3).unwrap();
        let read = rchar() - before;
        assert_eq!(m.source_size, size);
        assert_eq!(stats.bytes_read, size);
        // The source once, plus a little slack for reads the runtime itself makes.
        assert!(
            read >= size && read < size + (256 << 10),
            "chunk {chunk}: read {read} bytes for a {size}-byte source"
        );
    }
}
