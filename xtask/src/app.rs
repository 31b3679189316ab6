//! `cargo xtask build-app`: the console, built by trunk without network.

use std::path::PathBuf;

use xshell::{Shell, cmd};

use crate::{step, workspace_root};

/// Where the built console lands.
pub(crate) fn dist_dir() -> PathBuf {
    workspace_root().join("crates/app/dist")
}

pub(crate) fn build(sh: &Shell) -> anyhow::Result<()> {
    step("build-app: trunk build --release (offline)");
    // npm's binaryen 132 first on PATH: Debian's wasm-opt breaks the app.
    let node_bin = workspace_root().join("e2e/node_modules/.bin");
    let path = std::env::var("PATH").unwrap_or_default();
    let _dir = sh.push_dir("crates/app");
    cmd!(sh, "trunk build --release")
        .env("PATH", format!("{}:{path}", node_bin.display()))
        .run()?;
    step("build-app: precompressing (brotli, gzip)");
    for (name, size, brotli, gzip) in precompress(&dist_dir())? {
        #[allow(clippy::print_stdout, reason = "the build's own report")]
        {
            println!("  {name}: {size} B, brotli {brotli} B, gzip {gzip} B");
        }
    }
    // Said here for everyone; `cargo xtask ci` fails on it.
    match check_size_budget(&dist_dir()) {
        Ok(left) => eprintln!("  the WASM's gzip is within its budget, {left} B to spare"),
        Err(err) => eprintln!("  warning: {err}"),
    }
    Ok(())
}

/// The built files worth sending compressed (text and WASM; images in the
/// console are SVG, also text).
const COMPRESSED_EXTENSIONS: [&str; 4] = ["wasm", "js", "css", "svg"];

/// Writes `<file>.br` and `<file>.gz` beside every compressible file of
/// `dist`, which the server sends to a browser that accepts them (a file
/// whose compressed form would not be smaller is left alone). Returns
/// `(name, size, brotli size, gzip size)` of each.
pub(crate) fn precompress(dist: &std::path::Path) -> anyhow::Result<Vec<(String, u64, u64, u64)>> {
    use std::io::Write;
    let mut sizes = Vec::new();
    for entry in std::fs::read_dir(dist)? {
        let path = entry?.path();
        let compressible = path
            .extension()
            .and_then(|extension| extension.to_str())
            .is_some_and(|extension| COMPRESSED_EXTENSIONS.contains(&extension));
        if !path.is_file() || !compressible {
            continue;
        }
        let original = std::fs::read(&path)?;
        let mut brotli_bytes = Vec::new();
        {
            // Quality 11 and a 4 MiB window: slow, but done once per build.
            let mut writer = brotli::CompressorWriter::new(&mut brotli_bytes, 64 * 1024, 11, 22);
            writer.write_all(&original)?;
        }
        // Zopfli: plain gzip that any browser reads, 4–5 % smaller than
        // zlib's best level, for a few seconds more at build time (5
        // iterations instead of its 15 give the same size within 40 bytes
        // of the WASM's 293 KB, in a third less time). Browsers ask for
        // brotli only over HTTPS, so a console served over plain HTTP on an
        // internal network is sent this file.
        let mut gzip_bytes = Vec::new();
        zopfli::compress(
            zopfli::Options {
                iteration_count: std::num::NonZeroU64::new(5).expect("not zero"),
                ..zopfli::Options::default()
            },
            zopfli::Format::Gzip,
            original.as_slice(),
            &mut gzip_bytes,
        )?;
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_owned();
        for (suffix, bytes) in [("br", &brotli_bytes), ("gz", &gzip_bytes)] {
            let target = dist.join(format!("{name}.{suffix}"));
            if bytes.len() < original.len() {
                std::fs::write(&target, bytes)?;
            } else if target.exists() {
                std::fs::remove_file(&target)?;
            }
        }
        sizes.push((
            name,
            original.len() as u64,
            brotli_bytes.len() as u64,
            gzip_bytes.len() as u64,
        ));
    }
    sizes.sort();
    Ok(sizes)
}

/// The most the console's WASM may take as served gzipped: tablets
/// download it over Wi-Fi (BENCHMARKS.md, "Console size", has its history).
pub(crate) const WASM_GZIP_BUDGET: u64 = 300 * 1024;

/// Fails when the gzip copy of the console's WASM in `dist` is over
/// [`WASM_GZIP_BUDGET`]: the console drifted past it unseen once, so CI
/// holds it. Returns the bytes left.
pub(crate) fn check_size_budget(dist: &std::path::Path) -> anyhow::Result<u64> {
    let mut found = None;
    for entry in std::fs::read_dir(dist)? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.ends_with("_bg.wasm.gz"))
        {
            found = Some(std::fs::metadata(&path)?.len());
        }
    }
    let Some(size) = found else {
        anyhow::bail!(
            "no gzipped console WASM in {}: run `cargo xtask build-app`",
            dist.display()
        );
    };
    WASM_GZIP_BUDGET.checked_sub(size).ok_or_else(|| {
        anyhow::anyhow!(
            "the console's WASM is {size} B gzipped, {} B over its budget of {WASM_GZIP_BUDGET} B: \
             cut before adding (BENCHMARKS.md, \"Console size\", lists what each part costs)",
            size - WASM_GZIP_BUDGET
        )
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::{WASM_GZIP_BUDGET, check_size_budget, precompress};

    #[test]
    fn the_size_budget_holds_the_served_wasm_to_its_bytes() {
        let dist = tempfile_dir();
        let missing = check_size_budget(&dist).unwrap_err().to_string();
        assert!(missing.contains("build-app"), "{missing}");
        let wasm_gz = dist.join("canary-app-0123456789abcdef_bg.wasm.gz");
        std::fs::write(&wasm_gz, vec![0u8; WASM_GZIP_BUDGET as usize]).unwrap();
        assert_eq!(check_size_budget(&dist).unwrap(), 0);
        std::fs::write(&wasm_gz, vec![0u8; WASM_GZIP_BUDGET as usize + 1]).unwrap();
        let over = check_size_budget(&dist).unwrap_err().to_string();
        assert!(over.contains("1 B over its budget of 307200 B"), "{over}");
        std::fs::remove_dir_all(&dist).unwrap();
    }

    #[test]
    fn each_compressed_file_decompresses_to_the_original() {
        let dist = tempfile_dir();
        let wasm: Vec<u8> = (0..200_000u32).map(|n| (n % 251 / 7) as u8).collect();
        std::fs::write(dist.join("canary-app-0123456789abcdef_bg.wasm"), &wasm).unwrap();
        std::fs::write(dist.join("tiny.css"), "a{}").unwrap();
        std::fs::write(dist.join("icon.png"), [0u8; 4096]).unwrap();
        let sizes = precompress(&dist).unwrap();
        let name = "canary-app-0123456789abcdef_bg.wasm";
        let mut brotli_out = Vec::new();
        brotli::Decompressor::new(
            std::fs::File::open(dist.join(format!("{name}.br"))).unwrap(),
            4096,
        )
        .read_to_end(&mut brotli_out)
        .unwrap();
        assert_eq!(brotli_out, wasm);
        let mut gzip_out = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(dist.join(format!("{name}.gz"))).unwrap())
            .read_to_end(&mut gzip_out)
            .unwrap();
        assert_eq!(gzip_out, wasm);
        assert!(
            !dist.join("tiny.css.br").exists() && !dist.join("tiny.css.gz").exists(),
            "three bytes gain nothing from compression"
        );
        assert!(
            !dist.join("icon.png.gz").exists(),
            "not a compressible kind"
        );
        assert_eq!(sizes.len(), 2, "{sizes:?}");
        std::fs::remove_dir_all(&dist).unwrap();
    }

    /// A fresh directory under the system's temporary one.
    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "canary-precompress-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
