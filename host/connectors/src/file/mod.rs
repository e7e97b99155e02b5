//! `kind = "file"`: NDJSON replay as a source, NDJSON lines as a sink.

mod sink;
mod source;

pub use sink::{Ndjson, SinkMode};
pub use source::FileSource;

use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;
use weir_config::{ConfigError, PipelineSpec, SinkSpec};
use weir_core::metrics::Metrics;
use weir_core::sink::Sink;
use weir_core::source::Opened;

/// `[[sources]] kind = "file"`: NDJSON replay, one event per line, blank
/// lines skipped.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceOptions {
    /// The NDJSON file.
    pub path: Spanned<PathBuf>,
    /// Replay at most this many events per second (default 0: as fast as
    /// possible), e.g. to watch history go by at the pace it happened.
    pub rate: Option<u64>,
}

/// `[[sinks]] kind = "file"`: one JSON object per line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkOptions {
    /// The file to write NDJSON to (created with its folders if missing).
    pub path: PathBuf,
    /// Add to each event a `"_weir"` object with its metadata,
    /// `{"versions": {"<step>": "<sha256 of the plugin version>"}}` for
    /// every plugin step that processed it (default false).
    #[serde(default)]
    pub metadata: bool,
    /// What happens to the lines the file already holds when the run does
    /// not resume from a checkpoint: "auto" (default) empties it when every
    /// source starts from the beginning of its input (a file, a generator:
    /// the run writes it all again) and appends otherwise (Kafka, HTTP);
    /// "truncate" always empties it; "append" always adds after them. A
    /// run that resumes from a checkpoint cuts the file back to the
    /// checkpoint's length whatever the mode. The run summary says what
    /// was done.
    #[serde(default)]
    pub mode: SinkMode,
    /// Longest a written line waits in memory before it reaches the file
    /// (default "1s"); lines also go out at every checkpoint and at the end.
    #[serde(default, with = "humantime_serde::option")]
    pub flush_interval: Option<std::time::Duration>,
    /// Encrypt the file with the `[encryption]` keys (default: true when
    /// the pipeline has `[encryption]`); read it with `weir decrypt`.
    pub encrypt: Option<bool>,
}

pub struct File;

/// A file session: the keyring file sinks are encrypted with.
struct FileSession {
    keyring: Option<std::sync::Arc<weir_core::at_rest::Keyring>>,
}

const KINDS: &[&str] = &["file"];

impl super::Connector for File {
    fn name(&self) -> &'static str {
        "file"
    }

    fn source_kinds(&self) -> &'static [&'static str] {
        KINDS
    }

    fn sink_kinds(&self) -> &'static [&'static str] {
        KINDS
    }

    fn check(&self, spec: &PipelineSpec) -> Result<(), ConfigError> {
        for (_, s) in super::sources_of(spec, KINDS) {
            let o: FileSourceOptions = s.options.deserialize()?;
            if !o.path.get_ref().is_file() {
                let shown = o.path.get_ref().display();
                return Err(s.options.error_at(o.path.span(), "path", format!("input file `{shown}` not found")));
            }
        }
        // Each file is written by one writer: a checkpoint records how much
        // of it is a sink's, and a restart cuts it back to that.
        let dead = spec.dead_letter.clone().unwrap_or_else(|| weir_core::dead_letter::DEFAULT_PATH.into());
        let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut paths = vec![("the dead-letter output".to_string(), absolute(&dead))];
        for s in super::sinks_of(spec, KINDS) {
            let o: FileSinkOptions = s.options.deserialize()?;
            if o.encrypt == Some(true) && spec.encryption.is_none() {
                return Err(s.options.error("encrypt", "needs the keys of an `[encryption]` section"));
            }
            let path = absolute(&o.path);
            if let Some((other, _)) = paths.iter().find(|(_, p)| *p == path) {
                let shown = o.path.display();
                return Err(s.options.error("path", format!("`{shown}` is written by {other} already")));
            }
            paths.push((format!("sink `{}`", s.name), path));
        }
        Ok(())
    }

    fn session(&self, cx: &super::SessionContext<'_>) -> anyhow::Result<Box<dyn super::Session>> {
        Ok(Box::new(FileSession { keyring: cx.spec.encryption.clone() }))
    }
}

impl super::Session for FileSession {
    fn open_source(&mut self, cx: &super::SourceContext<'_>) -> anyhow::Result<Opened> {
        let o: FileSourceOptions = cx.spec.options.deserialize()?;
        let mut source = FileSource::open(o.path.get_ref(), cx.index, cx.spec)?
            .with_rate(o.rate.unwrap_or(0))
            .with_dead_letters(cx.dead.clone());
        if let Some(p) = cx.restored {
            weir_core::source::Source::resume(&mut source, p)?;
            tracing::info!(source = %cx.spec.name, position = ?p, "source resumes from the checkpoint");
        }
        Ok((Box::new(source), None))
    }

    fn open_sink(&mut self, spec: &SinkSpec, _: &Metrics) -> anyhow::Result<Box<dyn Sink>> {
        let o: FileSinkOptions = spec.options.deserialize()?;
        let interval = o.flush_interval.unwrap_or(std::time::Duration::from_secs(1));
        let keyring = self.keyring.clone().filter(|_| o.encrypt != Some(false));
        Ok(Box::new(sink::open_file_with(&spec.name, &o.path, o.metadata, o.mode, interval, keyring)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Connector;
    use weir_core::position::Position;

    fn check(sinks: &str) -> Result<(), String> {
        let text = format!(
            "[pipeline]\nname = \"p\"\n\n[[sources]]\nname = \"g\"\nkind = \"generator\"\ngenerate = \"vitals\"\n\n{sinks}\n[dead_letter]\npath = \"out/dead.ndjson\"\n"
        );
        let spec = weir_config::load_str(std::path::Path::new("p.toml"), &text).unwrap();
        File.check(&spec).map_err(|e| e.to_string())
    }

    #[test]
    fn a_file_has_one_writer() {
        let sink =
            |name: &str, path: &str| format!("[[sinks]]\nname = \"{name}\"\nkind = \"file\"\npath = \"{path}\"\n\n");
        assert_eq!(check(&(sink("a", "out/a.ndjson") + &sink("b", "out/b.ndjson"))), Ok(()));
        let e = check(&(sink("a", "out/a.ndjson") + &sink("b", "out/./a.ndjson"))).unwrap_err();
        assert!(e.ends_with("sinks[1].path: `out/./a.ndjson` is written by sink `a` already"), "{e}");
        let e = check(&sink("a", "out/dead.ndjson")).unwrap_err();
        assert!(e.ends_with("sinks[0].path: `out/dead.ndjson` is written by the dead-letter output already"), "{e}");
    }

    #[test]
    fn a_file_sink_is_cut_back_to_its_checkpoint_and_never_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        std::fs::write(&path, "{\"old\":1}\n").unwrap();
        let mut batch = weir_core::event::Batch::default();
        batch.push(br#"{"a":1}"#, 0, Default::default());
        let mut sink = sink::open_file("s", &path, false).unwrap();
        sink.write(&batch, None).unwrap();
        sink.flush().unwrap();
        let at = sink.position().unwrap();
        assert_eq!(at, Position::File { offset: 18, line: 0 }, "the lines before this run count");
        sink.write(&batch, None).unwrap();
        sink.flush().unwrap();
        let mut again = sink::open_file("s", &path, false).unwrap();
        again.resume(&at).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"old\":1}\n{\"a\":1}\n");
        again.resume(&Position::File { offset: 1000, line: 0 }).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 18, "a longer checkpoint never grows the file");
        let mut null = sink::open_file("s", std::path::Path::new("/dev/null"), false).unwrap();
        null.resume(&Position::File { offset: 0, line: 0 }).unwrap();
    }

    #[test]
    fn the_mode_decides_what_a_fresh_run_keeps_and_a_torn_line_is_cut() {
        use weir_core::sink::RunStart;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let open =
            |mode| sink::open_file_with("s", &path, false, mode, std::time::Duration::from_secs(1), None).unwrap();
        std::fs::write(&path, "{\"old\":1}\n{\"torn\":").unwrap();
        let note = open(SinkMode::Auto).begin(RunStart::Continuing).unwrap().unwrap();
        assert!(note.contains("a torn last line of 8 bytes was cut off"), "{note}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"old\":1}\n");
        assert_eq!(open(SinkMode::Auto).begin(RunStart::Resumed).unwrap(), None);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"old\":1}\n");
        assert!(open(SinkMode::Append).begin(RunStart::FromBeginning).unwrap().unwrap().starts_with("appending"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"old\":1}\n");
        let note = open(SinkMode::Auto).begin(RunStart::FromBeginning).unwrap().unwrap();
        assert!(note.starts_with("emptied") && note.contains("10 bytes"), "{note}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        std::fs::write(&path, "{}\n").unwrap();
        assert!(open(SinkMode::Truncate).begin(RunStart::Continuing).unwrap().is_some());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }

    #[test]
    fn an_encrypted_file_is_cut_back_at_frames_and_never_mixed_with_plaintext() {
        use weir_core::at_rest::{Keyring, open_file};
        use weir_core::sink::RunStart;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let keys = std::sync::Arc::new(Keyring::parse(&format!("k1 {}", "ab".repeat(31) + "cd")).unwrap());
        let open = |mode, keys: Option<_>| {
            sink::open_file_with("s", &path, false, mode, std::time::Duration::from_secs(1), keys).unwrap()
        };
        let batch = |n: u32| {
            let mut b = weir_core::event::Batch::default();
            b.push(format!(r#"{{"PatientId":"P-{n}"}}"#).as_bytes(), 0, Default::default());
            b
        };
        let mut sink = open(SinkMode::Auto, Some(keys.clone()));
        assert_eq!(sink.begin(RunStart::FromBeginning).unwrap(), None);
        sink.write(&batch(1), None).unwrap();
        sink.flush().unwrap();
        let at = sink.position().unwrap();
        sink.write(&batch(2), None).unwrap();
        sink.flush().unwrap();
        let mut again = open(SinkMode::Auto, Some(keys.clone()));
        again.resume(&at).unwrap();
        again.write(&batch(3), None).unwrap();
        again.flush().unwrap();
        drop(again);
        let mut raw = std::fs::read(&path).unwrap();
        assert!(!raw.windows(9).any(|w| w == b"PatientId"), "no field name in the raw file");
        let text = String::from_utf8(open_file(Some(&keys), &raw).unwrap().plaintext).unwrap();
        assert_eq!(text, "{\"PatientId\":\"P-1\"}\n{\"PatientId\":\"P-3\"}\n");
        // A torn last frame (a machine crash) is cut off by the next run.
        raw.extend_from_slice(&[9, 0, 0, 0, 2]);
        std::fs::write(&path, &raw).unwrap();
        let note = open(SinkMode::Append, Some(keys.clone())).begin(RunStart::Continuing).unwrap().unwrap();
        assert!(note.contains("a torn last encrypted frame of 5 bytes was cut off"), "{note}");
        assert_eq!(open_file(Some(&keys), &std::fs::read(&path).unwrap()).unwrap().plaintext, text.as_bytes());
        // Plaintext is never added to it, nor it to plaintext, whatever the
        // start, unless the mode says to empty it.
        let try_open = |mode, keys| {
            sink::open_file_with("s", &path, false, mode, std::time::Duration::from_secs(1), keys).map(|_| ())
        };
        for mode in [SinkMode::Auto, SinkMode::Append] {
            let e = try_open(mode, None).unwrap_err();
            assert!(e.to_string().contains("is encrypted but encryption is off"), "{e}");
        }
        let mut emptied = open(SinkMode::Truncate, None);
        assert!(emptied.resume(&at).unwrap_err().to_string().contains("is encrypted but encryption is off"));
        assert!(emptied.begin(RunStart::Resumed).unwrap_err().to_string().contains("is encrypted"));
        assert!(emptied.begin(RunStart::Continuing).unwrap().unwrap().starts_with("emptied"));
        emptied.write(&batch(4), None).unwrap();
        emptied.flush().unwrap();
        let e = try_open(SinkMode::Auto, Some(keys.clone())).unwrap_err();
        assert!(e.to_string().contains("holds plaintext from an earlier run"), "{e}");
        // Resumed without being cut back (a push source): a torn frame is cut.
        std::fs::write(&path, &raw).unwrap();
        let note = open(SinkMode::Auto, Some(keys.clone())).begin(RunStart::Resumed).unwrap().unwrap();
        assert!(note.contains("a torn last encrypted frame of 5 bytes was cut off"), "{note}");
    }

    /// Every `write` a file sink makes ends at the end of a line.
    struct Calls(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

    impl std::io::Write for Calls {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    proptest::proptest! {
        #[test]
        fn lines_reach_the_writer_whole(sizes in proptest::collection::vec(0usize..400_000, 1..40), metadata: bool) {
            let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let mut out = Ndjson::new(Calls(calls.clone()), metadata, false);
            let mut batch = weir_core::event::Batch::default();
            let mut expected = Vec::new();
            for (i, n) in sizes.iter().enumerate() {
                let payload = format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(*n));
                batch.push(payload.as_bytes(), 0, Default::default());
                expected.push(payload);
            }
            out.write(&batch, None).unwrap();
            out.flush().unwrap();
            let calls = calls.lock().unwrap();
            for c in calls.iter() {
                proptest::prop_assert_eq!(c.last(), Some(&b'\n'));
            }
            let all: Vec<u8> = calls.concat();
            let text = String::from_utf8(all).unwrap();
            proptest::prop_assert_eq!(text.lines().count(), expected.len());
            if !metadata {
                proptest::prop_assert_eq!(text.lines().collect::<Vec<_>>(), expected.iter().map(String::as_str).collect::<Vec<_>>());
            }
        }
    }
}
