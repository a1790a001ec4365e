//! Shared test harness: start the real `strom` binary on a free loopback port, talk to it with
//! real clients, stop or SIGKILL it. Every process a test starts dies with the test
//! (PR_SET_PDEATHSIG and Drop), so nothing outlives the run.
#![allow(dead_code)]

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod cluster;
pub mod connect;
pub mod etcd;
pub mod mariadb;
pub mod proxy;
pub mod rdk;
pub mod secure;
pub mod tier;
pub mod txn;
pub mod txn_wire;
pub mod wire;

pub const BIN: &str = env!("CARGO_BIN_EXE_strom");

pub struct Strom {
    child: Option<Child>,
    pub port: u16,
    pub data_dir: PathBuf,
    extra: Vec<String>,
    /// A program that runs the broker (e.g. `fiu-run -x` for fault injection); empty: none.
    pub wrapper: Vec<String>,
    /// Environment variables the broker gets beyond the test's own.
    pub env: Vec<(String, String)>,
}

pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct free ports, none handed out before in this test process: the kernel may give
/// a just-released port to the next bind, and two tests running side by side must not both
/// start a broker on it (one would find the other's listener and think its own was up).
pub fn free_ports(n: usize) -> Vec<u16> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let mut held = Vec::new();
    let mut ports = Vec::with_capacity(n);
    while ports.len() < n {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        if !given.contains(&port) {
            given.push(port);
            ports.push(port);
        }
        // Held until all are chosen, so the kernel does not hand the same one out again.
        held.push(l);
    }
    ports
}

impl Strom {
    /// Starts a broker on `data_dir` with extra `serve` flags and waits until it accepts connections.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Strom {
        Strom::start_wrapped(data_dir, extra, &[])
    }

    /// Like [`Strom::start`], with the broker run by `wrapper` (which must exec it, keeping the PID).
    pub fn start_wrapped(data_dir: &Path, extra: &[&str], wrapper: &[&str]) -> Strom {
        Strom::start_on(data_dir, free_port(), extra, wrapper)
    }

    /// Like [`Strom::start_wrapped`], on a given Kafka port.
    pub fn start_on(data_dir: &Path, port: u16, extra: &[&str], wrapper: &[&str]) -> Strom {
        let mut s = Strom {
            child: None,
            port,
            data_dir: data_dir.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            wrapper: wrapper.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
        };
        s.spawn();
        s
    }

    /// Like [`Strom::start`], with extra environment variables.
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: Vec<(String, String)>) -> Strom {
        Strom::start_on_with_env(data_dir, free_port(), extra, env)
    }

    /// Like [`Strom::start_on`], with extra environment variables.
    pub fn start_on_with_env(
        data_dir: &Path,
        port: u16,
        extra: &[&str],
        env: Vec<(String, String)>,
    ) -> Strom {
        let mut s = Strom {
            child: None,
            port,
            data_dir: data_dir.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            wrapper: Vec::new(),
            env,
        };
        s.spawn();
        s
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits up to `timeout` for the broker to exit by itself; its status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.arg("serve").arg("--data-dir").arg(&self.data_dir);
        // With --kafka-listeners the test names every listener (the one at `port` included).
        if !self.extra.iter().any(|a| a == "--kafka-listeners") {
            cmd.arg("--kafka-addr").arg(self.addr());
        }
        cmd.args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // Brokers run side by side: the etcd API only where a test asks for it, on its port.
        if !self.extra.iter().any(|a| a == "--etcd-addr") {
            cmd.args(["--etcd-addr", ""]);
        }
        if !self.extra.iter().any(|a| a == "--http-addr") {
            cmd.args(["--http-addr", ""]);
        }
        if std::env::var_os("RUST_LOG").is_none() && !self.extra.iter().any(|a| a == "--log-level")
        {
            cmd.args(["--log-level", "warn"]);
        }
        die_with_test(&mut cmd);
        self.child = Some(cmd.spawn().expect("start strom"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(self.addr()).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("strom exited during start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "strom did not start listening on {}",
                self.addr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Clean stop (SIGTERM) and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(status)) = c.try_wait() {
                    assert!(status.success(), "strom exited badly on SIGTERM: {status}");
                    return;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("strom did not stop within 20 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// SIGKILL: the crash case. Nothing gets flushed or checkpointed.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same data directory and port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill first");
        self.spawn();
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Sends `signal` (e.g. SIGSTOP/SIGCONT) to the running broker.
    pub fn signal(&self, signal: i32) {
        if let Some(c) = &self.child {
            unsafe { libc::kill(c.id() as i32, signal) };
        }
    }

    /// SIGSTOP, returning once every thread of the broker has stopped: `kill` only queues the
    /// stop, and on this VM the threads take 0.5 to 4 ms to reach it, so a test that needs the
    /// broker silent from a point on waits for that.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
        let Some(pid) = self.pid() else { return };
        let deadline = Instant::now() + Duration::from_secs(10);
        let stopped = || -> bool {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                return false;
            };
            tasks.filter_map(Result::ok).all(|t| {
                std::fs::read_to_string(t.path().join("stat"))
                    .ok()
                    .and_then(|s| {
                        s.rsplit(')')
                            .next()
                            .map(|r| r.trim_start().starts_with('T'))
                    })
                    .unwrap_or(false)
            })
        };
        while !stopped() {
            assert!(Instant::now() < deadline, "broker {pid} did not stop");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Strom {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Makes `cmd`'s process die with the test (SIGKILL when its parent thread exits), so a failed
/// or killed test leaves no server behind.
pub fn die_with_test(cmd: &mut Command) {
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Runs the `strom` CLI; returns (exit success, stdout, stderr).
pub fn cli(args: &[&str], stdin: &str) -> (bool, String, String) {
    run_with_stdin(Command::new(BIN).args(args), stdin)
}

/// Runs `cmd` with `stdin` as its input; returns (exit success, stdout, stderr).
pub fn run_with_stdin(cmd: &mut Command, stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Polls `check` every 100 ms until it holds; panics with `what` and the last `state` after
/// `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> (bool, String)) {
    let deadline = Instant::now() + timeout;
    loop {
        let (done, state) = check();
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {state}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `curl` with `args`: (HTTP status, body); status 0 when nothing answered.
pub fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "60"])
        .args(args)
        .output()
        .expect("run curl (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Runs `tests/python/<script>` with kafka-python against `broker`; returns its stdout.
/// The interpreter comes from `STROM_PYTHON`, else the venv `scripts/test.sh` creates.
pub fn run_python(script: &str, broker: &str) -> String {
    run_python_args(script, &[broker])
}

/// [`run_python`] with any arguments.
pub fn run_python_args(script: &str, args: &[&str]) -> String {
    let py = std::env::var("STROM_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        format!("{home}/.cache/strom/venv/bin/python")
    });
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(&py)
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {py} ({e}): run scripts/test.sh, which creates the venv")
        });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    stdout
}
