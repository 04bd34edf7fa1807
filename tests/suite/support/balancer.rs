//! A real load balancer in front of warship hosts: Debian's HAProxy on a free loopback
//! port, health-checking each host's `/readyz`, killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub struct Balancer {
    child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Balancer {
    /// Balances round-robin over `hosts` (`http://127.0.0.1:port` each). A host whose
    /// `/readyz` fails one check (every 250 ms) gets no new requests; a request that
    /// found a host gone (refused, cut, or 503 while it stops) is sent to another, as a
    /// client would retry it; a server-sent event stream may stay open an hour.
    pub fn start(hosts: &[&str]) -> Balancer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let servers: String = hosts
            .iter()
            .enumerate()
            .map(|(i, base)| format!("  server host{i} {} check\n", base.trim_start_matches("http://")))
            .collect();
        let config = format!(
            "global\n  maxconn 4096\n\
             defaults\n  mode http\n  timeout connect 2s\n  timeout client 1h\n  timeout server 1h\n  timeout http-request 10s\n\
             \x20 retries 3\n  option redispatch 1\n  retry-on conn-failure empty-response response-timeout 503\n\
             frontend api\n  bind 127.0.0.1:{port}\n  default_backend hosts\n\
             backend hosts\n  balance roundrobin\n  option httpchk GET /readyz\n  http-check expect status 200\n\
             \x20 default-server inter 250ms fall 1 rise 1\n{servers}"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let check = Command::new("haproxy").args(["-c", "-q", "-f", path.to_str().unwrap()]).status();
        assert!(check.is_ok_and(|s| s.success()), "haproxy is missing or refuses its config: scripts/test installs Debian's haproxy");
        let child = Command::new("haproxy")
            .args(["-db", "-f", path.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(dir.path().join("haproxy.log")).unwrap()))
            .spawn()
            .unwrap();
        let balancer = Balancer { child, base: format!("http://127.0.0.1:{port}"), _dir: dir };
        let started = Instant::now();
        while !Command::new("curl").args(["-sf", &format!("{}/readyz", balancer.base)]).output().is_ok_and(|o| o.status.success()) {
            assert!(started.elapsed() < Duration::from_secs(20), "haproxy did not pass a request to a host in 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        balancer
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
