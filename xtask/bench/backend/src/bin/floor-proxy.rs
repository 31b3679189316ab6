//! The least an HTTP/1.1 reverse proxy can do, as a benchmark's floor.
//!
//! Usage: floor-proxy --port N --production HOST:PORT --canary HOST:PORT
//!                    [--canary-percent P] [--threads T]
//!
//! Requests are split like the other proxies' in the harness: P of every 100
//! on a thread (default 5) go to the canary backend, in turn. Each client
//! connection opens its own keep-alive connection to each backend when it
//! first needs it. A request head is passed on byte for byte as soon as its
//! blank line is in (no parsing, no header rewriting, no request bodies: the
//! load generators send GETs), and the response is read to the end of its
//! `Content-Length` and passed back byte for byte. Nothing is recorded and
//! no timer runs.
//!
//! It is not a proxy anyone should run. It answers one question for the
//! proxy benchmark: how fast can any proxy on this machine be, when its own
//! code costs next to nothing and only the kernel's sockets are left? If it
//! is not far ahead of nginx, no real proxy can be either.
use std::cell::Cell;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BUFFER: usize = 64 * 1024;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = arg(&args, "--port")
        .expect("--port N")
        .parse()
        .expect("--port: a port number");
    let address = |name: &str| -> SocketAddr {
        arg(&args, name)
            .unwrap_or_else(|| panic!("{name} HOST:PORT"))
            .parse()
            .unwrap_or_else(|_| panic!("{name}: HOST:PORT"))
    };
    let backends = [address("--production"), address("--canary")];
    let canary_percent: u32 = arg(&args, "--canary-percent")
        .map(|s| s.parse().expect("--canary-percent: 0-100"))
        .unwrap_or(5);
    let threads: usize = arg(&args, "--threads")
        .map(|s| s.parse().expect("--threads: a number"))
        .unwrap_or(2);
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("cannot bind --port");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    eprintln!(
        "floor-proxy listening on {} -> {} ({canary_percent} % to {}), threads={threads}",
        listener.local_addr().unwrap(),
        backends[0],
        backends[1]
    );
    // One single-threaded runtime per thread, all accepting on the same
    // socket: like nginx's workers, a connection stays on one thread.
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let listener = listener.try_clone().expect("clone the listener");
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).unwrap();
                    loop {
                        let Ok((client, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(async move {
                            let _ = forward(client, backends, canary_percent).await;
                        });
                    }
                })
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
}

thread_local! {
    static REQUESTS: Cell<u32> = const { Cell::new(0) };
}

/// Whether this thread's next request goes to the canary: `percent` of every
/// 100, spread out.
fn to_canary(percent: u32) -> bool {
    REQUESTS.with(|n| {
        let i = n.get();
        n.set((i + 1) % 100);
        (i * percent) % 100 + percent >= 100
    })
}

async fn forward(
    mut client: TcpStream,
    backends: [SocketAddr; 2],
    canary_percent: u32,
) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let mut servers: [Option<TcpStream>; 2] = [None, None];
    let mut request = vec![0u8; BUFFER];
    let mut request_len = 0;
    let mut response = vec![0u8; BUFFER];
    loop {
        let request_end = loop {
            if let Some(end) = head_end(&request[..request_len]) {
                break end;
            }
            let read = client.read(&mut request[request_len..]).await?;
            if read == 0 {
                return Ok(());
            }
            request_len += read;
        };
        let side = usize::from(to_canary(canary_percent));
        if servers[side].is_none() {
            let server = TcpStream::connect(backends[side]).await?;
            server.set_nodelay(true)?;
            servers[side] = Some(server);
        }
        let server = servers[side].as_mut().expect("connected above");
        server.write_all(&request[..request_end]).await?;
        request.copy_within(request_end..request_len, 0);
        request_len -= request_end;

        let mut response_len = 0;
        let total = loop {
            if let Some(end) = head_end(&response[..response_len]) {
                break end + content_length(&response[..end]);
            }
            let read = server.read(&mut response[response_len..]).await?;
            if read == 0 {
                return Ok(());
            }
            response_len += read;
        };
        while response_len < total {
            let read = server.read(&mut response[response_len..]).await?;
            if read == 0 {
                return Ok(());
            }
            response_len += read;
        }
        client.write_all(&response[..total]).await?;
    }
}

/// Where the head ends: just after its blank line.
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// The head's `Content-Length`, 0 without one.
fn content_length(head: &[u8]) -> usize {
    head.split(|&b| b == b'\n')
        .find_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            if !line[..colon].eq_ignore_ascii_case(b"content-length") {
                return None;
            }
            std::str::from_utf8(&line[colon + 1..])
                .ok()?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}
