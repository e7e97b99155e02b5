//! weir-config: the pipeline file — TOML, every table `deny_unknown_fields`.
//! It may depend only on `weir-core`.
//!
//! Loading is two stages, as in Vector: [`load`] parses the file alone (syntax,
//! unknown keys, types), then [`validate`](validate::validate) checks it in
//! context (files exist, names are unique, sinks name real outputs). The keys
//! of a source's or sink's kind are not known here: [`Options`] hands them to
//! the connector of that kind, which reads them into its own type; queries
//! are compiled by the query crate. Every error names the file, and the line
//! and key where it can.

mod keys;
mod load;
mod options;
mod server;
mod types;
mod validate;

pub use keys::{KeysFrom, MAX_KEYS_FILE, read_keyring};
pub use load::{ConfigError, SourceText, load, load_str, read_at_most};
pub use options::Options;
pub use server::{
    HttpLimits, MAX_TOKENS_FILE, Scope, ServerSpec, TokenSpec, parse_tokens_file, read_tokens_file, unreadable,
};
pub use types::*;
pub use validate::*;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn err(text: &str) -> String {
        load_str(Path::new("p.toml"), text).unwrap_err().to_string()
    }

    const HEAD: &str = "[pipeline]\nname = \"p\"\n\n";

    #[test]
    fn the_keys_of_a_kind_are_left_to_its_connector() {
        let spec = load_str(
            Path::new("p.toml"),
            &format!("{HEAD}[[sources]]\nname = \"g\"\nkind = \"generator\"\ngenerate = \"vitals\"\nrate = 5\n"),
        )
        .unwrap();
        let s = &spec.sources[0];
        assert_eq!((s.kind.as_str(), s.options.keys.clone()), ("generator", vec!["generate".into(), "rate".into()]));
        assert_eq!(spec.batch_size, 1024);
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        struct Generator {
            #[allow(dead_code)]
            generate: String,
        }
        let e = s.options.deserialize::<Generator>().unwrap_err().to_string();
        assert!(e.starts_with("p.toml: TOML parse error at line 8"), "{e}");
        assert!(e.contains("unknown field `rate`"), "{e}");
        assert_eq!(s.options.error("generate", "bad").to_string(), "p.toml:6: sources[0].generate: bad");
    }

    #[test]
    fn sinks_must_name_a_real_step() {
        let e = err(&format!(
            "{HEAD}[[sources]]\nname = \"g\"\nkind = \"generator\"\ngenerate = \"orders\"\n\n[[sinks]]\nname = \"s\"\nkind = \"stdout\"\nfrom = \"nope.alerts\"\n"
        ));
        assert_eq!(e, "p.toml:12: sinks[0].from: no step named `nope` (steps: none)");
    }

    #[test]
    fn names_are_unique_across_sources_steps_and_sinks() {
        let e = err(&format!(
            "{HEAD}[[sources]]\nname = \"x\"\nkind = \"generator\"\ngenerate = \"orders\"\n\n[[sinks]]\nname = \"x\"\nkind = \"stdout\"\n"
        ));
        assert_eq!(e, "p.toml:10: sinks[0].name: the name `x` is used twice");
    }

    #[test]
    fn grants_circuits_and_metadata_are_checked_in_context() {
        let plugin = "plugins/sdk/rust/Cargo.toml"; // any existing file stands in for a component
        let step = |extra: &str| {
            format!(
                "{HEAD}[[sources]]\nname = \"g\"\nkind = \"generator\"\ngenerate = \"orders\"\n\n[[steps]]\nname = \"s\"\nplugin = \"../../{plugin}\"\n{extra}\n"
            )
        };
        let e = err(&step("grants = { read_dir = \"/no/such/folder\" }"));
        assert_eq!(e, "p.toml:10: steps[0].grants.read_dir: `/no/such/folder` is not a folder");
        let e = err(&step("circuit = { fallback = \"/no/such.wasm\" }"));
        assert_eq!(e, "p.toml:12: steps[0].circuit.fallback: plugin file `/no/such.wasm` not found");
        let e = err(&step("grants = { network = true }"));
        assert!(e.contains("unknown field `network`"), "{e}");
    }

    #[test]
    fn a_pipeline_needs_a_source() {
        assert_eq!(err(HEAD), "p.toml: sources: a pipeline needs at least one [[sources]] table");
    }

    #[test]
    fn durations_and_sizes_are_read_in_human_units() {
        let spec = load_str(
            Path::new("p.toml"),
            "[pipeline]\nname = \"p\"\nbatch_linger = \"20ms\"\n\n[[sources]]\nname = \"g\"\nkind = \"generator\"\ngenerate = \"orders\"\nmax_out_of_orderness = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(spec.batch_linger, std::time::Duration::from_millis(20));
        assert_eq!(spec.sources[0].max_out_of_orderness, std::time::Duration::from_secs(5));
    }

    /// Lines the config fuzzer below puts together.
    const LINES: &[&str] = &[
        "[pipeline]",
        "name = \"p\"",
        "name = \"\"",
        "batch_size = 0",
        "batch_size = 99999999999999999999",
        "batch_bytes = \"1GiB\"",
        "batch_bytes = \"99EiB\"",
        "parallelism = 70000",
        "max_parallelism = 0",
        "event_time_min = \"+300000-01-01T00:00:00Z\"",
        "event_time_max = \"1900-01-01T00:00:00Z\"",
        "[[sources]]",
        "kind = \"file\"",
        "kind = \"http\"",
        "kind = \"kafka\"",
        "path = \"/dev/null\"",
        "timestamp_field = \"t\"",
        "max_out_of_orderness = \"9999999999y\"",
        "idle_timeout = \"0s\"",
        "[[steps]]",
        "query = \"SELECT\"",
        "plugin = \"x.wasm\"",
        "allowed_lateness = \"-1s\"",
        "outputs = [\"out\"]",
        "limits.state_bytes = \"0B\"",
        "[[sinks]]",
        "from = \"a.b.c\"",
        "from = \".\"",
        "[server]",
        "listen = \"127.0.0.1:0\"",
        "max_connections = 0",
        "header_timeout = \"0s\"",
        "[[server.tokens]]",
        "id = \"t\"",
        "sha256 = \"zz\"",
        "[checkpoint]",
        "dir = \"/tmp/x\"",
        "keep = 1",
        "[dead_letter]",
        "redact = [1]",
        "= =",
        "[[",
        "\"\\u0000\" = 1",
    ];

    proptest::proptest! {
        /// Fuzzing the config loader (issue 19): any file of these lines
        /// (and any text) loads or fails with an error — never a panic.
        #[test]
        fn any_pipeline_file_loads_or_fails_with_an_error(
            lines in proptest::collection::vec(proptest::sample::select(LINES), 0..24),
            text in "\\PC{0,80}",
        ) {
            for file in [lines.join("\n"), text.clone()] {
                if let Err(e) = load_str(Path::new("p.toml"), &file) {
                    proptest::prop_assert!(!e.to_string().is_empty());
                }
            }
        }
    }
}
