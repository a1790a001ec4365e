//! A private MariaDB server for a test: its own data directory in a temp dir, its own
//! loopback port and socket, ROW binlog, utf8mb4; never a system instance. SQL goes through
//! the real `mariadb` client.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// A private temporary directory: servers sharing `/tmp` delete each other's temporary
/// tables (`#sql-temptable-*`) while bootstrapping and fail.
fn tmpdir(dir: &Path) -> String {
    format!("--tmpdir={}", dir.join("tmp").display())
}

pub struct MariaDb {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

/// The replication user every connector test uses.
pub const USER: &str = "cdc";
pub const PASSWORD: &str = "cdc-secret";

impl MariaDb {
    /// Installs and starts a server in `dir` (which must exist) with extra `mariadbd` flags.
    pub fn start(dir: &Path, extra: &[&str]) -> MariaDb {
        let data = dir.join("data");
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let out = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", data.display()))
            .arg(tmpdir(dir))
            .output()
            .expect("run mariadb-install-db (scripts/test.sh installs mariadb-server)");
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut db = MariaDb {
            child: None,
            port: free_port(),
            dir: dir.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        db.spawn();
        db.sql(&format!(
            "CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; \
             GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* TO '{USER}'@'%';"
        ));
        db
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("mysqld.sock")
    }

    fn spawn(&mut self) {
        let data = self.dir.join("data");
        let mut cmd = Command::new("mariadbd");
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(tmpdir(&self.dir))
            .arg("--user=root")
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!(
                "--pid-file={}",
                self.dir.join("mariadbd.pid").display()
            ))
            .arg(format!("--log-bin={}", data.join("binlog").display()))
            .arg(format!(
                "--log-error={}",
                self.dir.join("error.log").display()
            ))
            .args([
                "--server-id=1",
                "--binlog-format=ROW",
                "--binlog-row-image=FULL",
                "--skip-name-resolve",
            ])
            .args([
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
            ])
            .args([
                "--innodb-buffer-pool-size=64M",
                "--innodb-log-file-size=48M",
            ])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        super::die_with_test(&mut cmd);
        self.child = Some(cmd.spawn().expect("start mariadbd"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.try_sql("SELECT 1").is_err() {
            assert!(
                Instant::now() < deadline,
                "mariadbd did not start: {}",
                std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs statements as root; the output rows, tab-separated.
    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("mariadb")
            .args([
                "--no-defaults",
                "--default-character-set=utf8mb4",
                "-uroot",
                "-N",
                "-B",
            ])
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-e", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql)
            .unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"))
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// A `mysql` connector config for this server.
    pub fn connector_config(&self, prefix: &str) -> serde_json::Value {
        serde_json::json!({
            "connector.class": "mysql",
            "database.hostname": "127.0.0.1",
            "database.port": self.port.to_string(),
            "database.user": USER,
            "database.password": PASSWORD,
            "database.server.id": "5401",
            "topic.prefix": prefix,
        })
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.kill9();
    }
}
