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

/// Inputs on which IronRDP's decoding panicked, found by the fuzz target, one per place
/// (named after it: RemoteFX tile positions and clipping rects that overflow 16 bits, a
/// fast-path surface rect of width 0, the AVC444 colour conversion in the `yuv` crate). With
/// overflow checks (debug builds) each panic is contained and the session ends with an error;
/// without them the arithmetic wraps. Never a panic out of `replay`.
#[test]
fn every_decoder_panic_the_fuzzer_found_ends_the_session_cleanly() {
    ecsrdp::rdp::install_panic_hook();
    let found = corpus("fuzz/regressions/server_pdus");
    assert_eq!(found.len(), 8, "{found:?}");
    for file in found {
        let (result, _) = run(&std::fs::read(&file).unwrap());
        if cfg!(debug_assertions) {
            let error = result.expect_err(&file.display().to_string()).to_string();
            assert!(error.contains("IronRDP's decoder failed on it"), "{error}");
        }
    }
}
