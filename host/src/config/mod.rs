//! The pipeline file: TOML, every table `deny_unknown_fields`.
//!
//! Loading is two stages, as in Vector: [`load`] parses the file alone (syntax,
//! unknown keys, types), then [`validate`](validate::validate) checks it in
//! context (files exist, names are unique, sinks name real outputs). Every error
//! names the file, and the line and key where it can.

mod kafka;
mod load;
mod server;
mod types;
mod validate;

pub use kafka::{CheckpointSpec, KafkaSinkSpec, KafkaSourceSpec, KafkaStart};
pub use load::{ConfigError, load, load_str};
pub use server::{Scope, ServerSpec, TokenSpec};
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
    fn a_generator_gets_defaults_and_refuses_file_fields() {
        let spec = load_str(
            Path::new("p.toml"),
            &format!("{HEAD}[[sources]]\nname = \"g\"\nkind = \"generator\"\ngenerate = \"vitals\"\n"),
        )
        .unwrap();
        let SourceSpecKind::Generator(g) = &spec.sources[0].kind else { panic!("not a generator") };
        assert_eq!((g.rate, g.count, g.keys, g.seed), (0, None, 100, 1));
        assert_eq!(spec.batch_size, 1024);
        let e = err(&format!(
            "{HEAD}[[sources]]\nname = \"g\"\nkind = \"generator\"\ngenerate = \"vitals\"\npath = \"x\"\n"
        ));
        assert_eq!(e, "p.toml:6: sources[0].path: does not apply to a source of kind `generator`");
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
                "{HEAD}[[sources]]\nname = \"g\"\nkind = \"generator\"\ngenerate = \"orders\"\n\n[[steps]]\nname = \"s\"\nplugin = \"../{plugin}\"\n{extra}\n"
            )
        };
        let e = err(&step("grants = { read_dir = \"/no/such/folder\" }"));
        assert_eq!(e, "p.toml:10: steps[0].grants.read_dir: `/no/such/folder` is not a folder");
        let e = err(&step("circuit = { fallback = \"/no/such.wasm\" }"));
        assert_eq!(e, "p.toml:12: steps[0].circuit.fallback: plugin file `/no/such.wasm` not found");
        let e = err(&step("grants = { network = true }"));
        assert!(e.contains("unknown field `network`"), "{e}");
        let e = err(&format!(
            "{HEAD}[[sources]]\nname = \"g\"\nkind = \"generator\"\ngenerate = \"orders\"\n\n[[sinks]]\nname = \"d\"\nkind = \"discard\"\nmetadata = true\n"
        ));
        assert_eq!(e, "p.toml:10: sinks[0].metadata: applies only to file and stdout sinks");
    }

    #[test]
    fn kafka_sources_and_sinks_are_checked() {
        let src = "[[sources]]\nname = \"k\"\nkind = \"kafka\"\nbrokers = \"b:9092\"\ntopic = \"t\"\n";
        let e = err(&format!("{HEAD}{src}"));
        assert_eq!(
            e,
            "p.toml:6: sources[0].kind: a kafka source needs a [checkpoint] section: its offsets are committed with each checkpoint"
        );
        let ck = "\n[checkpoint]\ndir = \"/tmp/weir-ckpt\"\n";
        let spec = load_str(Path::new("p.toml"), &format!("{HEAD}{src}{ck}")).unwrap();
        let SourceSpecKind::Kafka(k) = &spec.sources[0].kind else { panic!("not kafka") };
        assert_eq!((k.group.as_str(), k.start, k.stop_at_end), ("weir-p", KafkaStart::Earliest, false));
        let c = spec.checkpoint.unwrap();
        assert_eq!((c.interval, c.keep, c.exactly_once), (std::time::Duration::from_secs(1), 3, true));
        let e = err(&format!("{HEAD}{src}start = \"yesterday\"\n{ck}"));
        assert!(e.starts_with("p.toml:6: sources[0].start: `yesterday` is neither"), "{e}");
        let e = err(&format!("{HEAD}{src}properties = {{ \"enable.auto.commit\" = \"true\" }}\n{ck}"));
        assert!(e.contains("sources[0].properties.enable.auto.commit: is set by Weir"), "{e}");
        let e =
            err(&format!("{HEAD}{src}{ck}\n[[sinks]]\nname = \"f\"\nkind = \"file\"\npath = \"x\"\ntopic = \"t\"\n"));
        assert!(e.ends_with("sinks[0].topic: applies only to sinks of kind `kafka`"), "{e}");
        let e = err(&format!("{HEAD}{src}{ck}\n[[sinks]]\nname = \"o\"\nkind = \"kafka\"\nbrokers = \"b\"\n"));
        assert!(e.ends_with("sinks[0].topic: a kafka sink needs `topic`"), "{e}");
        let e = err(&format!("{HEAD}{src}[checkpoint]\ndir = \"x\"\nkeep = 1\n"));
        assert!(e.contains("checkpoint.keep: must be at least 2"), "{e}");
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
}
