//! The `metrics` recorder of a test binary: installed once, read through snapshots.

use std::sync::OnceLock;

use metrics_util::debugging::{DebuggingRecorder, Snapshotter};

/// This binary's recorder (installed on first use; a binary has only one).
pub fn snapshotter() -> &'static Snapshotter {
    static S: OnceLock<Snapshotter> = OnceLock::new();
    S.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let s = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this binary");
        s
    })
}
