//! nginx as the router, for real: Debian's nginx started on loopback in
//! front of two fake upstreams, steered through the file canary writes and
//! measured through its access log.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use canary_server::config::RouterConfig;
use canary_shared::{CanaryShare, Command as Action, Phase};

use crate::router::{app_with_router, canary_answers, doc_block, free_tcp_port, free_udp_port};
use crate::support::{FakeUpstream, eventually};

/// nginx in the foreground with the snippet of `docs/router-nginx.md` in its
/// `http` block, stopped when dropped.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    front: std::net::SocketAddr,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, so the master stops its workers (SIGKILL left them running).
        canary_server::adapters::demo_router::terminate(&mut self.child);
    }
}

impl Nginx {
    fn command(&self, extra: &[&str]) -> Vec<String> {
        let dir = self.dir.path().to_string_lossy().into_owned();
        let conf = self
            .dir
            .path()
            .join("nginx.conf")
            .to_string_lossy()
            .into_owned();
        let mut command: Vec<String> = ["nginx", "-p", &dir, "-c", &conf]
            .iter()
            .map(|part| (*part).to_owned())
            .collect();
        command.extend(extra.iter().map(|part| (*part).to_owned()));
        command
    }
}

/// The canary side of `docs/router-nginx.md`, moved into the test's folder
/// and ports, with nginx's commands given its prefix.
fn nginx_router(nginx: &Nginx, confirm: u16, log_port: u16) -> RouterConfig {
    let yaml = doc_block("router-nginx.md", "yaml");
    let yaml = yaml
        .replace(
            "/etc/nginx/canary/split.conf",
            &nginx.dir.path().join("split.conf").to_string_lossy(),
        )
        .replace("127.0.0.1:8099", &format!("127.0.0.1:{confirm}"))
        .replace("127.0.0.1:5141", &format!("127.0.0.1:{log_port}"));
    let seed = include_str!("../../../../canary-config.yaml");
    let seed = &seed[seed.find("\ncanary:\n").unwrap() + 1..];
    let mut config = canary_server::config::Config::from_yaml(&format!("{yaml}{seed}"))
        .unwrap_or_else(|err| panic!("{err}"));
    let nginx_config = config.router.nginx.as_mut().unwrap();
    nginx_config.test_command = canary_server::config::HookCommand(nginx.command(&["-t"]));
    nginx_config.reload_command =
        canary_server::config::HookCommand(nginx.command(&["-s", "reload"]));
    config.router
}

fn start_nginx(
    production: &FakeUpstream,
    canary: &FakeUpstream,
    confirm: u16,
    log_port: u16,
) -> Nginx {
    use canary_server::adapters::router::nginx::render;
    use canary_server::domain::roles::{Routing, UpstreamSlot};
    let dir = tempfile::tempdir().unwrap();
    let front = free_tcp_port();
    let snippet = doc_block("router-nginx.md", "nginx");
    let snippet = snippet
        .replace(
            "/etc/nginx/canary/split.conf",
            &dir.path().join("split.conf").to_string_lossy(),
        )
        .replace("listen 80;", &format!("listen 127.0.0.1:{front};"))
        .replace("127.0.0.1:5141", &format!("127.0.0.1:{log_port}"));
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    std::fs::write(
        dir.path().join("nginx.conf"),
        format!(
            "worker_processes 1;\npid {pid};\nerror_log {log};\nevents {{}}\nhttp {{\n\
             client_body_temp_path {tmp}/body;\nproxy_temp_path {tmp}/proxy;\nfastcgi_temp_path {tmp}/fastcgi;\n\
             uwsgi_temp_path {tmp}/uwsgi;\nscgi_temp_path {tmp}/scgi;\naccess_log off;\n{snippet}}}\n",
            pid = path("nginx.pid"),
            log = path("error.log"),
            tmp = path("tmp"),
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    // The first file, as canary would write it at 0 %, so nginx can start.
    let servers = [
        production.url().trim_start_matches("http://").to_owned(),
        canary.url().trim_start_matches("http://").to_owned(),
    ];
    let routing = Routing {
        share: CanaryShare::ZERO,
        production: UpstreamSlot::ListedAsProduction,
    };
    std::fs::write(
        dir.path().join("split.conf"),
        render(
            routing,
            1,
            &servers,
            "$request_id",
            std::net::SocketAddr::from(([127, 0, 0, 1], confirm)),
        ),
    )
    .unwrap();
    let mut nginx = Nginx {
        child: Command::new("true").spawn().unwrap(),
        dir,
        front: std::net::SocketAddr::from(([127, 0, 0, 1], front)),
    };
    let command = nginx.command(&["-g", "daemon off;"]);
    nginx.child = Command::new(&command[0])
        .args(&command[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx is installed (cargo xtask setup)");
    for _ in 0..200 {
        if std::net::TcpStream::connect(nginx.front).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    nginx
}

/// A rollout at `percent` through a real nginx, confirmed, with the
/// router's config adjusted by `adjust` first.
struct ThroughNginx {
    _production: FakeUpstream,
    canary: FakeUpstream,
    nginx: Nginx,
    app: crate::support::TestApp,
}

async fn through_nginx(percent: f64, adjust: impl FnOnce(&mut RouterConfig)) -> ThroughNginx {
    let production = FakeUpstream::named("production").await;
    let canary = FakeUpstream::named("canary").await;
    let (confirm, log_port) = (free_tcp_port(), free_udp_port());
    let nginx = start_nginx(&production, &canary, confirm, log_port);
    let mut router = nginx_router(&nginx, confirm, log_port);
    adjust(&mut router);
    let app = app_with_router(&production, &canary, router).await;
    crate::promotion::start(&app, "v2.7.0", percent).await;
    eventually("nginx to serve the first split", async || {
        app.controller.state.borrow().router.confirmed.then_some(())
    })
    .await;
    ThroughNginx {
        _production: production,
        canary,
        nginx,
        app,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_through_nginx_is_written_checked_reloaded_confirmed_and_measured() {
    // Every field bound: the fake upstreams must outlive the test's requests.
    let ThroughNginx {
        _production,
        canary: _canary,
        nginx,
        app,
    } = through_nginx(25.0, |_| {}).await;
    for percent in [25.0, 5.0, 50.0] {
        let share = CanaryShare::from_percent(percent).unwrap();
        if percent != 25.0 {
            app.controller
                .command("ops".to_owned(), Action::Scale { percent: share }, None)
                .await
                .unwrap();
        }
        eventually("nginx to serve the new split", async || {
            let router = app.controller.state.borrow().router.clone();
            (router.confirmed && router.effective_percent == share).then_some(())
        })
        .await;
        let requests = 4000;
        let to_canary = canary_answers(nginx.front, requests).await;
        let measured = to_canary as f64 / requests as f64 * 100.0;
        // `split_clients` draws each request (a hash of its id), so the
        // split is binomial: within four standard deviations (2.7 points at
        // 25 % over 4,000 requests); HAProxy's round robin is exact.
        let p = percent / 100.0;
        let bound = 400.0 * (p * (1.0 - p) / requests as f64).sqrt();
        assert!(
            (measured - percent).abs() <= bound.max(1.0),
            "{measured} % to the canary at {percent} %"
        );
    }
    // Measured through nginx's access log.
    app.metrics_where(|metrics| metrics.canary.last_1m.requests > 1000)
        .await;

    // A file nginx refuses (a broken upstream address) holds the step,
    // says why, and leaves the last good file in place.
    let split = nginx.dir.path().join("split.conf");
    let good = std::fs::read_to_string(&split).unwrap();
    let conf = nginx.dir.path().join("nginx.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        text.replace("events {}", "events {}\nno_such_directive on;"),
    )
    .unwrap();
    app.controller
        .command(
            "ops".to_owned(),
            Action::Scale {
                percent: CanaryShare::from_percent(25.0).unwrap(),
            },
            None,
        )
        .await
        .unwrap();
    let refused = eventually("the refused change to show", async || {
        let router = app.controller.state.borrow().router.clone();
        router
            .detail
            .filter(|detail| detail.contains("nginx refused the new split"))
    })
    .await;
    assert!(refused.contains("no_such_directive"), "{refused}");
    assert_eq!(
        std::fs::read_to_string(&split).unwrap(),
        good,
        "the last good file is back"
    );
    // Fixed: canary's retries get it through.
    std::fs::write(&conf, text).unwrap();
    eventually("nginx to serve 25 % after the fix", async || {
        let router = app.controller.state.borrow().router.clone();
        (router.confirmed && router.effective_percent.percent() == 25.0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_nginx_a_split_changed_by_hand_is_corrected_and_a_failing_canary_rolled_back_to_nothing()
 {
    let ThroughNginx {
        _production,
        canary,
        nginx,
        app,
    } = through_nginx(50.0, |_| {}).await;

    // Someone writes canary's file by hand (25 %) and reloads: found,
    // audited and written again.
    let split = nginx.dir.path().join("split.conf");
    let by_hand = std::fs::read_to_string(&split)
        .unwrap()
        .replace(
            "50.00% canary_listed_as_canary",
            "25.00% canary_listed_as_canary",
        )
        .replace("share=5000", "share=2500");
    std::fs::write(&split, by_hand).unwrap();
    let reload = nginx.command(&["-s", "reload"]);
    assert!(
        Command::new(&reload[0])
            .args(&reload[1..])
            .status()
            .unwrap()
            .success()
    );
    let trail = eventually("the drift to be corrected", async || {
        let (_, _, body) = crate::support::http_get(
            &app.url("/admin/canary/audit?action=router_drift"),
            "application/json",
        )
        .await;
        let page: canary_shared::AuditPage = serde_json::from_str(&body).unwrap();
        let file = std::fs::read_to_string(&split).unwrap();
        (!page.events.is_empty() && file.contains("share=5000")).then_some(page)
    })
    .await;
    let reason = trail.events[0].reason.as_deref().unwrap();
    assert!(
        reason.contains("has 25 % to the canary (asked for 50 %)"),
        "{reason}"
    );
    eventually("nginx to serve 50 % again", async || {
        app.controller.state.borrow().router.confirmed.then_some(())
    })
    .await;

    canary.set_status(500);
    for _ in 0..40 {
        if app.controller.state.borrow().phase == Phase::RolledBack {
            break;
        }
        let _ = canary_answers(nginx.front, 200).await;
    }
    app.wait_for_phase(Phase::RolledBack).await;
    eventually("nginx to serve 0 %", async || {
        let router = app.controller.state.borrow().router.clone();
        (router.confirmed && router.effective_percent == CanaryShare::ZERO).then_some(())
    })
    .await;
    assert_eq!(
        canary_answers(nginx.front, 400).await,
        0,
        "a 0 % side is `down` in the written file: nothing reaches it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_split_by_a_client_variable_each_client_stays_on_one_side() {
    let ThroughNginx {
        _production,
        canary: _canary,
        nginx,
        app,
    } = through_nginx(50.0, |router| {
        router.nginx.as_mut().unwrap().split_by =
            canary_server::config::NginxVariable("$http_x_user".to_owned());
    })
    .await;
    let about = app.controller.state.borrow().router.about.clone();
    assert!(
        about.contains("each keeps its side while the share stays"),
        "{about}"
    );
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let mut users_on_canary = 0;
    for user in 0..100 {
        let mut sides = std::collections::BTreeSet::new();
        for _ in 0..3 {
            let request = hyper::Request::get(format!("http://{}/", nginx.front))
                .header("x-user", format!("user-{user}"))
                .body(http_body_util::Empty::new())
                .unwrap();
            let (_, headers, _) = crate::support::send(client.clone(), request).await;
            sides.insert(
                headers
                    .get("x-upstream")
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        assert_eq!(sides.len(), 1, "user-{user} was sent to {sides:?}");
        if sides.contains("canary") {
            users_on_canary += 1;
        }
    }
    assert!(
        (30..=70).contains(&users_on_canary),
        "{users_on_canary} of 100 users on the canary at 50 %"
    );
}
