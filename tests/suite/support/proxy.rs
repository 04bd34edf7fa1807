//! A TCP proxy that can cut its traffic: a network partition between one process and
//! another, without touching either. While cut, bytes already sent are held, new
//! connections wait, and nothing reaches the other side; once mended, all flows again.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub addr: String,
    cut: Arc<watch::Sender<bool>>,
    /// Where new connections go: a load balancer's backend.
    upstream: Arc<std::sync::Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

async fn flowing(cut: &mut watch::Receiver<bool>) {
    let _ = cut.wait_for(|cut| !*cut).await;
}

async fn relay(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, mut cut: watch::Receiver<bool>) {
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        flowing(&mut cut).await;
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Read while it flowed, held while it is cut.
        flowing(&mut cut).await;
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (cut, _) = watch::channel(false);
        let cut = Arc::new(cut);
        let upstream = Arc::new(std::sync::Mutex::new(upstream.to_owned()));
        let (backend, watching) = (upstream.clone(), cut.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                let (upstream, mut cut) = (backend.lock().unwrap().clone(), watching.subscribe());
                tokio::spawn(async move {
                    flowing(&mut cut).await;
                    let Ok(server) = TcpStream::connect(&upstream).await else { return };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::spawn(relay(client_read, server_write, cut.clone()));
                    tokio::spawn(relay(server_read, client_write, cut));
                });
            }
        });
        Proxy { addr, cut, upstream, task }
    }

    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// New connections go to `upstream` from now on.
    pub fn retarget(&self, upstream: &str) {
        *self.upstream.lock().unwrap() = upstream.to_owned();
    }

    pub fn mend(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
