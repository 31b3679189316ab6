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

/// No `mod.rs`: modules are `foo.rs` beside `foo/` (STYLE.md).
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
