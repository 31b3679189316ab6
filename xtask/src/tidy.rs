//! Repository rules, checked by `cargo test`.

use std::path::{Path, PathBuf};

use crate::workspace_root;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | "node_modules" | "dist" | ".git") {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// Every Rust file says what it is for on its first line.
#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    rust_files(&root.join("xtask"), &mut files);
    assert!(files.len() > 10, "found too few files: {files:?}");
    let missing: Vec<String> = files
        .iter()
        .filter(|path| !std::fs::read_to_string(path).unwrap().starts_with("//!"))
        .map(|path| path.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading //! doc line: {missing:?}"
    );
}

/// No `mod.rs`: modules are `foo.rs` beside `foo/` (CONTRIBUTING.md).
#[test]
fn no_mod_rs_files() {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    let mod_rs: Vec<_> = files
        .iter()
        .filter(|path| path.ends_with("mod.rs"))
        .collect();
    assert!(mod_rs.is_empty(), "{mod_rs:?}");
}

/// The README shows the command CI runs, so CI and people run the same thing.
#[test]
fn the_readme_shows_the_ci_command() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    assert!(
        ci.contains("cargo xtask ci"),
        ".ci/run must run `cargo xtask ci`"
    );
    assert!(
        readme.contains("cargo xtask ci"),
        "the README must show `cargo xtask ci`"
    );
    assert!(
        readme.contains("cargo xtask run"),
        "the README must show `cargo xtask run`"
    );
}

// === Layering ===

/// The code of a Rust file without its test module and its comments: what
/// the program itself depends on.
fn code_lines(source: &str) -> Vec<(usize, &str)> {
    let end = source
        .find("#[cfg(test)]\nmod tests")
        .unwrap_or(source.len());
    source[..end]
        .lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.starts_with("//"))
        .collect()
}

/// `path:line: text` for each code line of `source` that mentions one of `forbidden`.
fn forbidden_uses(path: &str, source: &str, forbidden: &[&str]) -> Vec<String> {
    code_lines(source)
        .into_iter()
        .filter(|(_, line)| forbidden.iter().any(|pattern| line.contains(pattern)))
        .map(|(number, line)| format!("{path}:{number}: {line}"))
        .collect()
}

/// What the pure core must not depend on: no runtime, no HTTP, no database,
/// no config file, and nothing of the shell around it.
const NOT_IN_THE_CORE: &[&str] = &[
    "tokio::",
    "axum::",
    "hyper::",
    "hyper_util::",
    "rusqlite::",
    "std::time::Instant",
    "std::time::SystemTime",
    "crate::config",
    "crate::adapters",
    "crate::controller",
    "crate::api",
    "crate::events",
];

/// What an adapter must not import: it reports through `events.rs` and the
/// domain's types, never by reaching into the controller or the API.
const NOT_IN_AN_ADAPTER: &[&str] = &["crate::controller", "crate::api"];

/// The server's non-test source files under `dir` (relative to its `src/`),
/// as (path relative to the repository, text).
fn server_sources(dir: &str) -> Vec<(String, String)> {
    let root = workspace_root();
    let src = root.join("crates/server/src");
    let mut files = Vec::new();
    let start = src.join(dir);
    if start.is_dir() {
        rust_files(&start, &mut files);
    } else {
        files.push(start.with_extension("rs"));
    }
    if start.is_dir() && src.join(format!("{dir}.rs")).exists() {
        files.push(src.join(format!("{dir}.rs")));
    }
    files
        .into_iter()
        .filter(|path| !path.ends_with("tests.rs"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (
                path.strip_prefix(&root).unwrap().display().to_string(),
                text,
            )
        })
        .collect()
}

#[test]
fn the_core_imports_no_io_config_or_shell() {
    let sources = server_sources("domain");
    assert!(
        sources.len() > 5,
        "found too few domain files: {}",
        sources.len()
    );
    let found: Vec<String> = sources
        .iter()
        .flat_map(|(path, text)| forbidden_uses(path, text, NOT_IN_THE_CORE))
        .collect();
    assert!(
        found.is_empty(),
        "the pure core takes settings and time as arguments (ARCHITECTURE.md):\n{}",
        found.join("\n")
    );
}

#[test]
fn no_adapter_imports_the_controller_or_the_api() {
    let sources = server_sources("adapters");
    assert!(
        sources.len() > 5,
        "found too few adapter files: {}",
        sources.len()
    );
    let found: Vec<String> = sources
        .iter()
        .flat_map(|(path, text)| forbidden_uses(path, text, NOT_IN_AN_ADAPTER))
        .collect();
    assert!(
        found.is_empty(),
        "adapters report through events.rs and the domain's types:\n{}",
        found.join("\n")
    );
}

#[test]
fn status_codes_stay_where_http_is_spoken() {
    let allowed = |path: &str| {
        path.starts_with("crates/server/src/api")
            || path.starts_with("crates/server/src/adapters")
            || path == "crates/server/src/cli.rs"
    };
    let found: Vec<String> = server_sources("")
        .iter()
        .filter(|(path, _)| !allowed(path))
        .flat_map(|(path, text)| forbidden_uses(path, text, &["StatusCode", "status()"]))
        .collect();
    assert!(
        found.is_empty(),
        "HTTP status codes belong to the HTTP shell: api/, the adapters and the CLI (ARCHITECTURE.md):\n{}",
        found.join("\n")
    );
}

/// The rules catch what they are for: each is shown a violation.
#[test]
fn the_layering_rules_fail_on_a_violation() {
    let core = "//! A pure module.\nuse crate::config::Config;\n// use tokio::time; (a comment)\n#[cfg(test)]\nmod tests {\n    use tokio::time;\n}\n";
    assert_eq!(
        forbidden_uses("domain/x.rs", core, NOT_IN_THE_CORE),
        ["domain/x.rs:2: use crate::config::Config;"]
    );
    let adapter = "//! An adapter.\nfn report(events: &Sender<crate::controller::Event>) {}\n";
    assert_eq!(
        forbidden_uses("adapters/x.rs", adapter, NOT_IN_AN_ADAPTER),
        ["adapters/x.rs:2: fn report(events: &Sender<crate::controller::Event>) {}"]
    );
    let clean = "//! Fine.\nuse crate::domain::judge::JudgeSecond;\nuse crate::events::Event;\n";
    assert!(forbidden_uses("adapters/y.rs", clean, NOT_IN_AN_ADAPTER).is_empty());
}

// === The map and the files it names ===

/// Every module is named in ARCHITECTURE.md's code map: as `name.rs`, or,
/// for a `name.rs` beside its folder, as `name/`.
#[test]
fn every_module_is_named_in_the_architecture() {
    let root = workspace_root();
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut files = Vec::new();
    for krate in ["server", "shared", "app"] {
        rust_files(&root.join("crates").join(krate).join("src"), &mut files);
    }
    let unnamed: Vec<String> = files
        .iter()
        .filter(|path| {
            !path.ends_with("tests.rs")
                && !path.components().any(|part| part.as_os_str() == "tests")
        })
        .filter(|path| {
            let stem = path.file_stem().unwrap().to_string_lossy();
            !map.contains(&format!("{stem}.rs")) && !map.contains(&format!("{stem}/"))
        })
        .map(|path| path.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(
        unnamed.is_empty(),
        "modules ARCHITECTURE.md does not name: {unnamed:?}"
    );
}

/// Every repository path the documentation mentions exists: links, and
/// paths in backticks that start at a top-level folder.
#[test]
fn every_file_the_docs_mention_exists() {
    let root = workspace_root();
    let mut docs = vec![
        root.join("README.md"),
        root.join("ARCHITECTURE.md"),
        root.join("CONTRIBUTING.md"),
        root.join("SECURITY.md"),
        root.join("BENCHMARKS.md"),
        root.join("xtask/bench/README.md"),
    ];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "md") {
            docs.push(path);
        }
    }
    const TOP: &[&str] = &[
        "crates/", "xtask/", "docs/", "scripts/", "deploy/", "e2e/", "style/", "public/", ".ci/",
    ];
    let mut missing = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        let base = doc.parent().unwrap();
        // Links: `](target)`.
        for (_, rest) in text
            .match_indices("](")
            .map(|(at, _)| ((), &text[at + 2..]))
        {
            let target = rest.split(')').next().unwrap_or_default();
            let target = target.split('#').next().unwrap_or_default();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            if !base.join(target).exists() {
                missing.push(format!(
                    "{}: link {target}",
                    doc.strip_prefix(&root).unwrap().display()
                ));
            }
        }
        // Paths in backticks from a top-level folder.
        for quoted in text.split('`').skip(1).step_by(2) {
            let path = quoted.split_whitespace().next().unwrap_or_default();
            let path = path.split(':').next().unwrap_or_default();
            // Made by a run, not kept in the repository.
            let generated = ["e2e/screenshots", "crates/app/dist", "target/"]
                .iter()
                .any(|made| path.starts_with(made));
            let concrete = !path.contains(['*', '{', '<', '$', '…']) && !generated;
            if concrete && TOP.iter().any(|top| path.starts_with(top)) && !root.join(path).exists()
            {
                missing.push(format!(
                    "{}: {path}",
                    doc.strip_prefix(&root).unwrap().display()
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the docs mention files that do not exist:\n{}",
        missing.join("\n")
    );
}
