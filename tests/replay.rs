//! Server streams replayed through exactly the session's decoding, without a server: the
//! sessions recorded from real servers in `resources/streams` (FreeRDP's shadow with each codec,
//! xrdp, Weston) decode without error and paint, and every input the fuzzer kept, the crashes it found
//! included, passes without a panic.

use std::path::{Path, PathBuf};

use ecsrdp::rdp::{replay, replay_stage, Codecs};
use ecsrdp::render::SharedFrame;

fn corpus(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// As the fuzz target reads its input: the first byte picks the codecs advertised.
fn run(data: &[u8]) -> (Result<usize, ecsrdp::rdp::RdpError>, u64) {
    let Some((&choice, stream)) = data.split_first() else {
        return (Ok(0), 0);
    };
    let codecs = match choice % 3 {
        0 => Codecs::H264,
        1 => Codecs::RemoteFx,
        _ => Codecs::Lossless,
    };
    let frame = SharedFrame::new(1024, 768);
    let mut painted = 0;
    let result = replay(&mut replay_stage(codecs), &frame, stream, |frame| {
        painted += frame.take_damage().area();
    });
    (result, painted)
}

/// Sessions recorded (`ECSRDP_RECORD`) from real servers, and the codecs each was asked for.
const RECORDED: [(&str, Codecs); 5] = [
    ("shadow-h264", Codecs::H264),
    ("shadow-rfx", Codecs::RemoteFx),
    ("shadow-lossless", Codecs::Lossless),
    ("xrdp-login", Codecs::Lossless),
    ("weston", Codecs::Lossless),
];

#[test]
fn recorded_sessions_decode_whole_and_paint() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("resources/streams");
    for (name, codecs) in RECORDED {
        let stream = std::fs::read(dir.join(format!("{name}.bin")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let frame = SharedFrame::new(1024, 768);
        let mut painted = 0;
        let decoded = replay(&mut replay_stage(codecs), &frame, &stream, |frame| {
            painted += frame.take_damage().area();
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            decoded > 0 && painted > 0,
            "{name}: {decoded} PDUs painted {painted} pixels"
        );
    }
}

/// Everything under `fuzz/corpus/server_pdus` and `fuzz/regressions/server_pdus`.
#[test]
fn every_kept_fuzz_input_passes_without_a_panic() {
    let mut files = corpus("fuzz/corpus/server_pdus");
    files.extend(corpus("fuzz/regressions/server_pdus"));
    assert!(!files.is_empty());
    for file in files {
        let data = std::fs::read(&file).unwrap();
        let _ = run(&data);
    }
}

/// A RemoteFX tile whose position times 64 overflows 16 bits made IronRDP's decoder panic
/// (found by the fuzz target). With overflow checks (debug builds) the panic is contained and the
/// session ends with an error; without them the position wraps. Never a panic out of `replay`.
#[test]
fn a_remotefx_tile_beyond_16_bits_ends_the_session_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/server_pdus");
    let data = std::fs::read(dir.join("rfx-tile-position-overflow")).unwrap();
    ecsrdp::rdp::install_panic_hook();
    let (result, _) = run(&data);
    if cfg!(debug_assertions) {
        let error = result.expect_err("the overflow is caught").to_string();
        assert!(error.contains("IronRDP's decoder failed on it"), "{error}");
    }
}
