//! `cargo xtask setup`: makes a fresh machine ready, idempotently.
//!
//! Everything comes from the package registries (crates.io, Debian, npm);
//! nothing downloads a prebuilt binary from elsewhere. `docs/toolchain.md`
//! gives the recipe this follows and why each version.

use std::path::Path;

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::step;

/// trunk 0.22 needs a newer rustc than the machine's 1.95.
const TRUNK_VERSION: &str = "0.21.14";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The deployment guide makes its private CA with it, and a test runs those lines.
const OPENSSL: &str = "/usr/bin/openssl";
/// Real HAProxy and nginx for the router tests (Debian's 2.6 and 1.22).
const HAPROXY: &str = "/usr/sbin/haproxy";
const NGINX: &str = "/usr/sbin/nginx";
/// A real Prometheus server for the metric-source tests.
const PROMETHEUS: &str = "/usr/bin/prometheus";

pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    step("setup: checking the toolchain");
    wasm_target(sh)?;
    trunk(sh)?;
    wasm_bindgen(sh)?;
    // Chromium with its recommended fonts, so screenshots read as users see them.
    debian_package(sh, CHROMIUM, "chromium", &[])?;
    debian_package(sh, PROMETHEUS, "prometheus", &["--no-install-recommends"])?;
    debian_package(sh, OPENSSL, "openssl", &["--no-install-recommends"])?;
    debian_package(sh, HAPROXY, "haproxy", &["--no-install-recommends"])?;
    debian_package(sh, NGINX, "nginx", &["--no-install-recommends"])?;
    node_packages(sh)?;
    Ok(())
}

fn wasm_target(sh: &Shell) -> anyhow::Result<()> {
    let installed = cmd!(sh, "rustup target list --installed").read()?;
    if installed.lines().any(|line| line.trim() == WASM_TARGET) {
        eprintln!("    {WASM_TARGET}: installed");
        return Ok(());
    }
    cmd!(sh, "rustup target add {WASM_TARGET}").run()?;
    Ok(())
}

/// Whether `program --version` prints exactly `wanted` (saying so when it does).
fn has_version(sh: &Shell, program: &str, wanted: &str) -> bool {
    let found = cmd!(sh, "{program} --version")
        .quiet()
        .ignore_stderr()
        .read()
        .unwrap_or_default();
    let installed = found.trim() == wanted;
    if installed {
        eprintln!("    {wanted}: installed");
    }
    installed
}

fn trunk(sh: &Shell) -> anyhow::Result<()> {
    let wanted = format!("trunk {TRUNK_VERSION}");
    if has_version(sh, "trunk", &wanted) {
        return Ok(());
    }
    eprintln!("    installing {wanted} from crates.io (about 12 minutes on 2 cores)");
    cmd!(sh, "cargo install --locked trunk@{TRUNK_VERSION}").run()?;
    Ok(())
}

/// wasm-bindgen-cli must equal the wasm-bindgen in Cargo.lock exactly, or
/// trunk (offline) refuses to build.
fn wasm_bindgen(sh: &Shell) -> anyhow::Result<()> {
    let lock = sh.read_file("Cargo.lock")?;
    let version =
        locked_version(&lock, "wasm-bindgen").context("Cargo.lock has no wasm-bindgen")?;
    if has_version(sh, "wasm-bindgen", &format!("wasm-bindgen {version}")) {
        return Ok(());
    }
    eprintln!("    installing wasm-bindgen-cli {version} from crates.io (about 4 minutes)");
    // Not --locked: that release's own lockfile names a crate version the registry lacks.
    cmd!(sh, "cargo install wasm-bindgen-cli@{version}").run()?;
    Ok(())
}

/// The version of `package` in a Cargo.lock text.
fn locked_version(lock: &str, package: &str) -> Option<String> {
    let name_line = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == name_line {
            let version = lines
                .next()?
                .trim()
                .strip_prefix("version = \"")?
                .strip_suffix('"')?;
            return Some(version.to_owned());
        }
    }
    None
}

/// Installs Debian's `package` unless `binary` is there already (never a
/// tool's own download: the machines reach only the package registries).
fn debian_package(sh: &Shell, binary: &str, package: &str, flags: &[&str]) -> anyhow::Result<()> {
    if Path::new(binary).exists() {
        eprintln!("    {package}: installed");
        return Ok(());
    }
    let user = cmd!(sh, "id -u").read()?;
    if user.trim() != "0" {
        bail!(
            "{package} is missing; install Debian's package as root: apt-get update && apt-get install -y --no-install-recommends {package}"
        );
    }
    eprintln!("    installing Debian's {package}");
    cmd!(sh, "apt-get update -qq").run()?;
    cmd!(sh, "apt-get install -y -qq {flags...} {package}")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    Ok(())
}

/// Playwright and npm's binaryen (for wasm-opt), at the versions package-lock.json pins.
fn node_packages(sh: &Shell) -> anyhow::Result<()> {
    let installed_lock = Path::new("e2e/node_modules/.package-lock.json");
    let wanted_lock = Path::new("e2e/package-lock.json");
    let fresh = match (
        std::fs::metadata(installed_lock),
        std::fs::metadata(wanted_lock),
    ) {
        (Ok(installed), Ok(wanted)) => installed.modified()? >= wanted.modified()?,
        _ => false,
    };
    if fresh && Path::new("e2e/node_modules/.bin/wasm-opt").exists() {
        eprintln!("    e2e node packages: installed");
        return Ok(());
    }
    let _dir = sh.push_dir("e2e");
    cmd!(sh, "npm ci --no-audit --no-fund").run()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::setup::locked_version;

    #[test]
    fn reads_a_locked_version() {
        let lock = "[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\n";
        assert_eq!(
            locked_version(lock, "wasm-bindgen").as_deref(),
            Some("0.2.130")
        );
        assert_eq!(locked_version(lock, "trunk"), None);
    }
}
