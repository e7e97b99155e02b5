//! `weir plugin new`: the same analytic (vital-signs early warning) in each
//! language, with that language's SDK, the WIT contract, and a shared sample
//! input and expected output. The files are compiled into the binary, so the
//! template always matches this Weir's `wit/` world.

use super::{Lang, MANIFEST, Manifest};
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The plugin's name: lowercase letters, digits and '-', starting with a letter.
    pub name: String,
    /// The language to write it in.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// The folder to create (default: ./<name>).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

macro_rules! repo_file {
    ($path:literal) => {
        include_str!(concat!("../../../../", $path))
    };
}

const WIT: &str = repo_file!("wit/weir-plugin@0.1.2/weir-plugin.wit");
const SAMPLE_INPUT: &str = repo_file!("plugins/templates/sample/input.ndjson");
const SAMPLE_EXPECTED: &str = repo_file!("plugins/templates/sample/expected.ndjson");
/// The Rust SDK finds the WIT contract three folders up in this repository,
/// and one folder up in a plugin made from the template.
const RUST_SDK_WIT_PATH: (&str, &str) = ("path: \"../../../wit/weir-plugin@0.1.2\"", "path: \"../wit\"");

/// The files of a new plugin: (path inside its folder, contents).
pub fn files(lang: Lang, name: &str) -> Vec<(&'static str, String)> {
    let fill = |text: &str| text.replace("{{name}}", name);
    let mut files = match lang {
        Lang::Rust => vec![
            ("Cargo.toml", fill(repo_file!("plugins/templates/rust/Cargo.toml.tmpl"))),
            ("src/lib.rs", repo_file!("plugins/templates/rust/src/lib.rs").to_string()),
            ("weir-plugin-sdk/Cargo.toml", repo_file!("plugins/templates/rust/weir-plugin-sdk.Cargo.toml").to_string()),
            (
                "weir-plugin-sdk/src/lib.rs",
                repo_file!("plugins/sdk/rust/src/lib.rs").replace(RUST_SDK_WIT_PATH.0, RUST_SDK_WIT_PATH.1),
            ),
            ("weir-plugin-sdk/src/batch.rs", repo_file!("plugins/sdk/rust/src/batch.rs").to_string()),
            ("weir-plugin-sdk/src/outcomes.rs", repo_file!("plugins/sdk/rust/src/outcomes.rs").to_string()),
            ("weir-plugin-sdk/src/models.rs", repo_file!("plugins/sdk/rust/src/models.rs").to_string()),
            ("weir-plugin-sdk/src/state.rs", repo_file!("plugins/sdk/rust/src/state.rs").to_string()),
        ],
        Lang::Python => vec![
            ("app.py", repo_file!("plugins/templates/python/app.py").to_string()),
            ("weir_plugin.py", repo_file!("plugins/sdk/python/weir_plugin.py").to_string()),
        ],
        Lang::Js => vec![
            ("app.js", repo_file!("plugins/templates/js/app.js").to_string()),
            ("weir_plugin.js", repo_file!("plugins/sdk/js/weir_plugin.js").to_string()),
        ],
        Lang::C => vec![
            ("app.c", repo_file!("plugins/templates/c/app.c").to_string()),
            ("weir_plugin.h", repo_file!("plugins/sdk/c/weir_plugin.h").to_string()),
            ("weir_plugin.c", repo_file!("plugins/sdk/c/weir_plugin.c").to_string()),
        ],
        Lang::Go => vec![
            ("go.mod", fill(repo_file!("plugins/templates/go/go.mod.tmpl"))),
            ("go.sum", repo_file!("plugins/templates/go/go.sum").to_string()),
            ("main.go", fill(repo_file!("plugins/templates/go/main.go"))),
            ("weir/weir.go", repo_file!("plugins/sdk/go/weir.go").to_string()),
        ],
    };
    let manifest = Manifest {
        name: name.to_string(),
        lang,
        headers: if lang == Lang::C { vec!["jsmn.h".into()] } else { Vec::new() },
    };
    let manifest = format!(
        "# Read by `weir plugin build` and `weir plugin test`.\n{}",
        toml::to_string(&manifest).expect("a manifest serializes")
    );
    files.extend([
        (MANIFEST, manifest),
        ("wit/weir-plugin.wit", WIT.to_string()),
        ("sample/input.ndjson", SAMPLE_INPUT.to_string()),
        ("sample/expected.ndjson", SAMPLE_EXPECTED.to_string()),
        (".gitignore", "target/\n".to_string()),
    ]);
    files
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "plugin name `{name}`: use lowercase letters, digits and '-', starting with a letter (e.g. `vitals-alert`)"
        );
    }
    Ok(())
}

pub fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    check_name(&args.name)?;
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!("{} exists and is not empty: choose another name or --dir", dir.display());
    }
    for (path, contents) in files(args.lang, &args.name) {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("a file has a folder"))?;
        std::fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    }
    eprintln!("created {} ({} plugin `{}`)", dir.display(), args.lang.as_str(), args.name);
    eprintln!("  build: weir plugin build {}", dir.display());
    eprintln!("  test:  weir plugin test {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_has_the_shared_sample_and_a_readable_manifest() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js, Lang::C, Lang::Go] {
            let files = files(lang, "vitals");
            let get = |p: &str| &files.iter().find(|(path, _)| *path == p).expect(p).1;
            assert_eq!(get("sample/input.ndjson"), SAMPLE_INPUT);
            let manifest: Manifest = toml::from_str(get(MANIFEST)).unwrap();
            assert_eq!((manifest.name.as_str(), manifest.lang), ("vitals", lang));
            assert!(files.iter().all(|(_, text)| !text.contains("{{name}}")), "{lang:?} left a placeholder");
        }
    }

    #[test]
    fn the_vendored_rust_sdk_points_at_the_plugins_own_wit() {
        let files = files(Lang::Rust, "vitals");
        let sdk = &files.iter().find(|(p, _)| *p == "weir-plugin-sdk/src/lib.rs").unwrap().1;
        assert!(sdk.contains(RUST_SDK_WIT_PATH.1) && !sdk.contains(RUST_SDK_WIT_PATH.0));
    }

    #[test]
    fn plugin_names_must_suit_every_toolchain() {
        for good in ["vitals", "vitals-alert", "v2"] {
            check_name(good).unwrap();
        }
        for bad in ["", "Vitals", "2fast", "vitals_alert", "vitals-", "a b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
