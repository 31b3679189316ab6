//! What the benchmark examples share: a release `canary demo` in its own
//! process, plain HTTP requests to it, and its memory and CPU from /proc.
#![allow(dead_code, reason = "each example uses a part")]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

pub(crate) fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The server under test, stopped when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) console: String,
    pub(crate) proxy: String,
    data: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

pub(crate) fn start_server(binary: &str, load_per_sec: u32) -> anyhow::Result<Server> {
    let data = std::env::temp_dir().join(format!("canary-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let load = load_per_sec.to_string();
    let data_dir = data.to_string_lossy().into_owned();
    spawn_canary(
        binary,
        &[
            "demo",
            "--admin-listen",
            "127.0.0.1:0",
            "--proxy-listen",
            "127.0.0.1:0",
            "--load",
            &load,
            "--data-dir",
            &data_dir,
        ],
        data,
    )
}

/// Runs `binary` with `args` and reads its addresses; `data` (its data
/// folder, or one that holds it) is removed when the server is dropped.
pub(crate) fn spawn_canary(
    binary: &str,
    args: &[&str],
    data: std::path::PathBuf,
) -> anyhow::Result<Server> {
    let mut child = Command::new(binary)
        .args(args)
        .env("CANARY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let (console, proxy) = read_addresses(&mut child)?;
    Ok(Server {
        child,
        console,
        proxy,
        data,
    })
}

/// The console's and the proxy's addresses from a starting `canary`'s
/// start-up lines (its stdout, piped), without a trailing slash; the rest
/// of its output is read and dropped so it never blocks on a full pipe.
pub(crate) fn read_addresses(child: &mut Child) -> anyhow::Result<(String, String)> {
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let (mut console, mut proxy) = (None, None);
    while console.is_none() || proxy.is_none() {
        let Some(Ok(line)) = lines.next() else {
            anyhow::bail!("canary exited before it served");
        };
        if let Some(url) = line.strip_prefix("canary: console at ") {
            console = Some(url.trim().trim_end_matches('/').to_owned());
        } else if let Some(url) = line.strip_prefix("canary: proxy at ") {
            proxy = Some(url.trim().trim_end_matches('/').to_owned());
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    Ok((console.unwrap_or_default(), proxy.unwrap_or_default()))
}

/// One plain HTTP/1.1 request to the console's listener: (status, body).
pub(crate) fn http(
    console: &str,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let authority = console
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    let mut stream = std::net::TcpStream::connect(authority)?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Resident memory of `pid` in KiB.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User and system CPU of `pid` in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field =
        |index: usize| -> u64 { fields.get(index).and_then(|v| v.parse().ok()).unwrap_or(0) };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    field(11) + field(12)
}

pub(crate) fn ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}
