//! The key tables of `docs/config.md`, generated from the doc comments of
//! the types the pipeline file is read into: `weir-config`'s sections and
//! each connector's options. A test regenerates every table and fails when
//! the page has drifted from the code; `WEIR_BLESS=1 cargo test -p weir
//! reference` rewrites the tables in place (the prose around them is kept).
//!
//! The types are read as Rust source (with `syn`), so a table is exactly
//! what the field's `///` comment says: the comment is the reference.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One table: its marker in the page, and the type it is generated from.
struct Table {
    marker: &'static str,
    file: &'static str,
    ty: &'static str,
}

const TYPES: &str = "host/config/src/types.rs";

const TABLES: &[Table] = &[
    Table { marker: "pipeline", file: TYPES, ty: "PipelineSection" },
    Table { marker: "server", file: TYPES, ty: "ServerSection" },
    Table { marker: "server.tokens", file: TYPES, ty: "TokenConfig" },
    Table { marker: "sources", file: TYPES, ty: "SourceConfig" },
    Table { marker: "sources.file", file: "host/connectors/src/file/mod.rs", ty: "FileSourceOptions" },
    Table { marker: "sources.generator", file: "host/connectors/src/generator/mod.rs", ty: "GeneratorOptions" },
    Table { marker: "sources.nexmark", file: "host/connectors/src/nexmark/mod.rs", ty: "NexmarkOptions" },
    Table { marker: "sources.http", file: "host/connectors/src/http/mod.rs", ty: "HttpOptions" },
    Table { marker: "sources.kafka", file: "host/connectors/src/kafka/config.rs", ty: "KafkaSourceOptions" },
    Table { marker: "steps", file: TYPES, ty: "StepConfig" },
    Table { marker: "sinks", file: TYPES, ty: "SinkConfig" },
    Table { marker: "sinks.file", file: "host/connectors/src/file/mod.rs", ty: "FileSinkOptions" },
    Table { marker: "sinks.stdout", file: "host/connectors/src/stdout/mod.rs", ty: "StdoutOptions" },
    Table { marker: "sinks.kafka", file: "host/connectors/src/kafka/config.rs", ty: "KafkaSinkOptions" },
    Table { marker: "sinks.discard", file: "host/connectors/src/discard.rs", ty: "DiscardOptions" },
    Table { marker: "deploy", file: TYPES, ty: "DeploySection" },
    Table { marker: "models", file: TYPES, ty: "ModelConfig" },
    Table { marker: "onnx", file: TYPES, ty: "OnnxSection" },
    Table { marker: "checkpoint", file: TYPES, ty: "CheckpointSection" },
    Table { marker: "dead_letter", file: TYPES, ty: "DeadLetterConfig" },
    Table { marker: "encryption", file: TYPES, ty: "EncryptionSection" },
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn doc(attrs: &[syn::Attribute]) -> String {
    let mut lines = Vec::new();
    for a in attrs {
        if let syn::Meta::NameValue(nv) = &a.meta
            && nv.path.is_ident("doc")
            && let syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) = &nv.value
        {
            lines.push(s.value().trim().to_string());
        }
    }
    lines.join(" ").replace('|', "\\|")
}

/// Whether a `#[serde(...)]` attribute of the field contains `word`.
fn serde_has(attrs: &[syn::Attribute], word: &str) -> bool {
    attrs.iter().filter(|a| a.path().is_ident("serde")).any(|a| {
        let mut found = false;
        let _ = a.parse_nested_meta(|m| {
            found |= m.path.is_ident(word);
            if m.input.peek(syn::Token![=]) {
                let _: syn::Expr = m.value()?.parse()?;
            }
            Ok(())
        });
        found
    })
}

/// The type's last path segment and its first generic argument.
fn parts(ty: &syn::Type) -> (String, Option<&syn::Type>) {
    let syn::Type::Path(p) = ty else { return ("value".into(), None) };
    let seg = p.path.segments.last().expect("a path has a segment");
    let arg = match &seg.arguments {
        syn::PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
            syn::GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    };
    (seg.ident.to_string(), arg)
}

/// (type as the page names it, optional, the struct to expand if any).
fn describe(ty: &syn::Type) -> (String, bool, Option<String>) {
    let (name, arg) = parts(ty);
    match (name.as_str(), arg) {
        ("Option", Some(inner)) => {
            let (t, _, nested) = describe(inner);
            (t, true, nested)
        }
        ("Spanned", Some(inner)) => describe(inner),
        ("Vec", Some(inner)) => (format!("list of {}", describe(inner).0), false, None),
        ("String", _) => ("string".into(), false, None),
        ("PathBuf", _) => ("path".into(), false, None),
        ("bool", _) => ("boolean".into(), false, None),
        ("u8" | "u16" | "u32" | "u64" | "usize" | "i64", _) => ("integer".into(), false, None),
        ("f64", _) => ("number".into(), false, None),
        ("Duration", _) => ("duration".into(), false, None),
        ("ByteSize", _) => ("size".into(), false, None),
        ("BTreeMap", _) => ("table".into(), false, None),
        ("Value", _) => ("any".into(), false, None),
        ("GeneratorKind" | "NexmarkKind" | "SinkMode", _) => ("string".into(), false, None),
        (other, _) => ("table".into(), false, Some(other.to_string())),
    }
}

fn find<'f>(file: &'f syn::File, ty: &str) -> Option<&'f syn::ItemStruct> {
    file.items.iter().find_map(|i| match i {
        syn::Item::Struct(s) if s.ident == ty => Some(s),
        _ => None,
    })
}

fn rows(file: &syn::File, ty: &str, prefix: &str, out: &mut String) {
    let s = find(file, ty).unwrap_or_else(|| panic!("no struct {ty}"));
    for f in &s.fields {
        if serde_has(&f.attrs, "flatten") {
            continue; // a kind's own keys: tables of their own
        }
        let key = format!("{prefix}{}", f.ident.as_ref().expect("named fields"));
        let (t, optional, nested) = describe(&f.ty);
        if let Some(inner) = nested.filter(|n| find(file, n).is_some()) {
            rows(file, &inner, &format!("{key}."), out);
            continue;
        }
        let required = !optional && !serde_has(&f.attrs, "default");
        let need = if required { "required" } else { "" };
        writeln!(out, "| `{key}` | {t} | {need} | {} |", doc(&f.attrs)).expect("to a string");
    }
}

/// The table of one type, as markdown.
fn table(t: &Table) -> String {
    let text = std::fs::read_to_string(repo().join(t.file)).unwrap_or_else(|e| panic!("{}: {e}", t.file));
    let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", t.file));
    let mut out = String::from("| key | type | | meaning |\n|---|---|---|---|\n");
    let before = out.len();
    rows(&file, t.ty, "", &mut out);
    if out.len() == before {
        out = "No keys of its own.\n".into();
    }
    out
}

const BEGIN: &str = "<!-- reference: ";
const END: &str = "<!-- end reference -->";

/// The page with every table regenerated.
fn regenerate(page: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = page;
    let mut seen = Vec::new();
    while let Some(at) = rest.find(BEGIN) {
        let (head, tail) = rest.split_at(at);
        out.push_str(head);
        let line_end = tail.find('\n').ok_or("a marker without a line end")?;
        let marker = tail[BEGIN.len()..line_end].trim_end_matches(" -->").trim();
        let t = TABLES.iter().find(|t| t.marker == marker).ok_or(format!("no type for table `{marker}`"))?;
        let end = tail.find(END).ok_or(format!("table `{marker}` has no `{END}`"))?;
        out.push_str(&tail[..=line_end]);
        out.push_str(&table(t));
        out.push_str(END);
        rest = &tail[end + END.len()..];
        seen.push(marker.to_string());
    }
    out.push_str(rest);
    for t in TABLES {
        if !seen.iter().any(|m| m == t.marker) {
            return Err(format!("docs/config.md has no table `{}` ({} in {})", t.marker, t.ty, t.file));
        }
    }
    Ok(out)
}

#[test]
fn the_config_reference_is_generated_from_the_types() {
    let path = repo().join("docs/config.md");
    let page = std::fs::read_to_string(&path).unwrap();
    let fresh = regenerate(&page).unwrap_or_else(|e| panic!("{e}"));
    if std::env::var_os("WEIR_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    if fresh != page {
        let diff = similar::TextDiff::from_lines(&page, &fresh);
        let shown = diff.unified_diff().header("docs/config.md", "from the types").to_string();
        panic!(
            "docs/config.md has drifted from the config types; run `WEIR_BLESS=1 cargo test -p weir reference`\n{shown}"
        );
    }
}

#[test]
fn every_connector_kind_has_a_table() {
    for c in weir_connectors::CONNECTORS {
        for (array, kinds) in [("sources", c.source_kinds()), ("sinks", c.sink_kinds())] {
            for kind in kinds {
                let marker = format!("{array}.{kind}");
                assert!(TABLES.iter().any(|t| t.marker == marker), "the kind `{kind}` has no table `{marker}`");
            }
        }
    }
}

#[test]
fn every_dead_letter_reason_is_documented() {
    let page = std::fs::read_to_string(repo().join("docs/config.md")).unwrap();
    let start = page.find("`reason` is one of").expect("docs/config.md lists the dead-letter reasons");
    let list = &page[start..start + page[start..].find(';').unwrap()];
    for reason in weir_core::metrics::DEAD_LETTER_REASONS {
        assert!(
            list.contains(&format!("`{reason}`")),
            "docs/config.md does not list the dead-letter reason `{reason}`"
        );
    }
}

/// docs/limits.md names only keys the config types have (docs/config.md is
/// generated from them), so the list of bounds cannot drift from the code.
#[test]
fn every_key_on_the_limits_page_is_a_config_key() {
    let limits = std::fs::read_to_string(repo().join("docs/limits.md")).unwrap();
    let config = std::fs::read_to_string(repo().join("docs/config.md")).unwrap();
    let mut checked = 0;
    for row in limits.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| What") && !l.starts_with("|---")) {
        let keys = row.split(" | ").nth(1).unwrap_or_default();
        let keys = keys.split(" (kind").next().unwrap_or_default();
        for quoted in keys.split('`').skip(1).step_by(2) {
            // "[server] max_connections", "limits.state_bytes", "max_body" ...
            let key = quoted.rsplit(' ').next().unwrap_or(quoted);
            if !key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
                || key.is_empty()
            {
                continue; // a query's window or a request body, not a key
            }
            assert!(
                config.contains(&format!("| `{key}` |")),
                "docs/limits.md names `{key}`, which docs/config.md does not list"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} keys found on the limits page");
}
