//! A fault-injecting TCP proxy for node-to-node traffic: one [`Proxy`] per ordered pair of nodes,
//! so a node can be cut off from the others in both directions while its Kafka port stays up.
//!
//! The proxies run on their own small tokio runtime, so a test that blocks its own threads
//! (SIGKILL and restart, blocking Metadata calls) never stalls the Raft traffic they carry.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

/// Whether a proxy passes traffic, and the connections it carries (aborted when it goes down).
#[derive(Default)]
struct Gate {
    down: bool,
    next_id: u64,
    live: HashMap<u64, AbortHandle>,
}

/// A TCP forwarder from a loopback port to `upstream`. While down it closes every connection it
/// carried and accepts new ones only to drop them at once.
pub struct Proxy {
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
    gate: Arc<Mutex<Gate>>,
}

impl Proxy {
    /// Binds a free loopback port and starts forwarding to `upstream` on `rt`.
    pub fn start(rt: &Runtime, upstream: SocketAddr) -> Proxy {
        // Bound with std and registered under `rt`: this may run inside another runtime.
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let _in_rt = rt.enter();
        let listener = TcpListener::from_std(std_listener).expect("proxy listener");
        let listen = listener.local_addr().expect("proxy addr");
        let gate = Arc::new(Mutex::new(Gate::default()));
        rt.spawn(accept_loop(listener, upstream, gate.clone()));
        Proxy {
            listen,
            upstream,
            gate,
        }
    }

    /// Cuts the link: closes every live connection and refuses new ones until [`Proxy::up`].
    pub fn down(&self) {
        let mut gate = self.gate.lock().expect("proxy gate");
        gate.down = true;
        for (_, conn) in gate.live.drain() {
            conn.abort();
        }
    }

    /// Lets traffic pass again.
    pub fn up(&self) {
        self.gate.lock().expect("proxy gate").down = false;
    }

    /// Connections being forwarded right now.
    pub fn live_connections(&self) -> usize {
        self.gate.lock().expect("proxy gate").live.len()
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, gate: Arc<Mutex<Gate>>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        // Decided and registered under the gate's lock, so `down` cannot miss a connection.
        let mut g = gate.lock().expect("proxy gate");
        if g.down {
            drop(client);
            continue;
        }
        let id = g.next_id;
        g.next_id += 1;
        let task = tokio::spawn(forward(client, upstream, gate.clone(), id));
        g.live.insert(id, task.abort_handle());
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, gate: Arc<Mutex<Gate>>, id: u64) {
    if let Ok(mut server) = TcpStream::connect(upstream).await {
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
    gate.lock().expect("proxy gate").live.remove(&id);
}

/// One proxy per ordered pair of `n` nodes: node `i` reaches node `j` (0-based) only through
/// `proxy(i, j)`, which forwards to `j`'s real Raft address.
pub struct Mesh {
    proxies: BTreeMap<(usize, usize), Proxy>,
    n: usize,
    /// Taken on drop: the proxies' tasks die with it.
    rt: Option<Runtime>,
}

impl Drop for Mesh {
    fn drop(&mut self) {
        // Not a blocking shutdown: the mesh may be dropped inside the test's own runtime.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Mesh {
    /// Starts the proxies for nodes whose Raft listeners are `127.0.0.1:{raft_ports[j]}`.
    pub fn start(raft_ports: &[u16]) -> Mesh {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("proxy")
            .enable_all()
            .build()
            .expect("proxy runtime");
        let n = raft_ports.len();
        let mut proxies = BTreeMap::new();
        for i in 0..n {
            for (j, port) in raft_ports.iter().enumerate() {
                if i != j {
                    let upstream = SocketAddr::from(([127, 0, 0, 1], *port));
                    proxies.insert((i, j), Proxy::start(&rt, upstream));
                }
            }
        }
        Mesh {
            proxies,
            n,
            rt: Some(rt),
        }
    }

    pub fn proxy(&self, from: usize, to: usize) -> &Proxy {
        &self.proxies[&(from, to)]
    }

    /// Node `i`'s `--peers` list (ids 1..=n): itself at its real Raft address, every other node
    /// at the proxy from `i` to it.
    pub fn peers_of(&self, i: usize, raft_ports: &[u16]) -> String {
        (0..self.n)
            .map(|j| {
                let addr = if i == j {
                    SocketAddr::from(([127, 0, 0, 1], raft_ports[j]))
                } else {
                    self.proxy(i, j).listen
                };
                format!("{}@{addr}", j + 1)
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Cuts node `k` (0-based) off from every other node, both directions.
    pub fn isolate(&self, k: usize) {
        for ((from, to), p) in &self.proxies {
            if *from == k || *to == k {
                p.down();
            }
        }
    }

    /// Every link passes traffic again.
    pub fn heal(&self) {
        for p in self.proxies.values() {
            p.up();
        }
    }

    /// Connections being forwarded right now, over all proxies.
    pub fn live_connections(&self) -> usize {
        self.proxies.values().map(Proxy::live_connections).sum()
    }
}
