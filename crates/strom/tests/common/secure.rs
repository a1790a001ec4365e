//! A secured broker for tests: a CA and certificates made with `strom cert`, Kafka listeners of
//! every protocol, a bootstrap admin, and the CLI logged in as whoever a test needs.

use std::path::{Path, PathBuf};

use super::{cli, free_ports, Strom};

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-secret";

/// `strom cert ca` and one certificate per name (valid for 127.0.0.1 and localhost).
pub fn make_certs(dir: &Path, names: &[&str]) -> PathBuf {
    let certs = dir.join("certs");
    let certs_s = certs.to_str().unwrap();
    let (ok, out, err) = cli(&["cert", "ca", "--dir", certs_s], "");
    assert!(ok, "cert ca: {out}{err}");
    for name in names {
        let (ok, out, err) = cli(
            &[
                "cert",
                "issue",
                name,
                "--dir",
                certs_s,
                "--host",
                "127.0.0.1,localhost",
            ],
            "",
        );
        assert!(ok, "cert issue {name}: {out}{err}");
    }
    certs
}

pub struct Secured {
    pub strom: Strom,
    pub certs: PathBuf,
    pub plaintext: String,
    pub sasl_plaintext: String,
    pub sasl_ssl: String,
    pub ssl: String,
}

impl Secured {
    /// A node with PLAINTEXT, SASL_PLAINTEXT, SASL_SSL and SSL listeners (certificate `node`,
    /// CA `certs/ca.pem`) and the bootstrap admin; `extra` flags on top.
    pub fn start(dir: &Path, certs: &Path, extra: &[&str]) -> Secured {
        let ports = free_ports(4);
        let addr = |i: usize| format!("127.0.0.1:{}", ports[i]);
        let listeners = format!(
            "PLAINTEXT://{},SASL_PLAINTEXT://{},SASL_SSL://{},SSL://{}",
            addr(0),
            addr(1),
            addr(2),
            addr(3)
        );
        let file = |f: &str| certs.join(f).to_str().unwrap().to_string();
        let mut args: Vec<String> = vec![
            "--kafka-listeners".into(),
            listeners,
            "--tls-cert".into(),
            file("node.pem"),
            "--tls-key".into(),
            file("node-key.pem"),
            "--tls-ca".into(),
            file("ca.pem"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let strom = Strom::start_on_with_env(
            &dir.join("data"),
            ports[0],
            &args,
            vec![
                ("STROM_BOOTSTRAP_USER".into(), ADMIN.into()),
                ("STROM_BOOTSTRAP_PASSWORD".into(), ADMIN_PASSWORD.into()),
            ],
        );
        let secured = Secured {
            strom,
            certs: certs.to_path_buf(),
            plaintext: addr(0),
            sasl_plaintext: addr(1),
            sasl_ssl: addr(2),
            ssl: addr(3),
        };
        // The bootstrap user is created just after start.
        super::wait_until(
            "the bootstrap admin",
            std::time::Duration::from_secs(20),
            || {
                let (ok, out, err) = secured.admin(&["user", "list"]);
                (ok && out.contains(ADMIN), format!("{out}{err}"))
            },
        );
        secured
    }

    pub fn cert(&self, f: &str) -> String {
        self.certs.join(f).to_str().unwrap().to_string()
    }

    /// The CLI logged in as `user` over SASL_SSL.
    pub fn as_user(&self, user: &str, password: &str, args: &[&str]) -> (bool, String, String) {
        let ca = self.cert("ca.pem");
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "-b",
            &self.sasl_ssl,
            "--user",
            user,
            "--password",
            password,
            "--tls-ca",
            &ca,
        ]);
        cli(&all, "")
    }

    pub fn admin(&self, args: &[&str]) -> (bool, String, String) {
        self.as_user(ADMIN, ADMIN_PASSWORD, args)
    }

    /// `strom acl create` as the admin.
    pub fn grant(&self, args: &[&str]) {
        let mut all = vec!["acl", "create"];
        all.extend_from_slice(args);
        let (ok, out, err) = self.admin(&all);
        assert!(ok, "acl create {args:?}: {out}{err}");
    }

    /// Creates a SCRAM user (both mechanisms) through the admin.
    pub fn create_user(&self, user: &str, password: &str) {
        let ca = self.cert("ca.pem");
        let mut cmd = std::process::Command::new(super::BIN);
        cmd.args([
            "user",
            "create",
            user,
            "-b",
            &self.sasl_ssl,
            "--user",
            ADMIN,
        ])
        .args(["--password", ADMIN_PASSWORD, "--tls-ca", &ca])
        .env("STROM_NEW_PASSWORD", password);
        let (ok, out, err) = super::run_with_stdin(&mut cmd, "");
        assert!(ok, "user create {user}: {out}{err}");
    }

    /// kcat with librdkafka properties `props` against `broker`; (success, stdout+stderr).
    pub fn kcat(
        &self,
        broker: &str,
        props: &[(&str, &str)],
        args: &[&str],
        stdin: &str,
    ) -> (bool, String) {
        let mut cmd = std::process::Command::new("timeout");
        cmd.args(["20", "kcat", "-b", broker]);
        for (k, v) in props {
            cmd.arg("-X").arg(format!("{k}={v}"));
        }
        cmd.args(args);
        let (ok, out, err) = super::run_with_stdin(&mut cmd, stdin);
        (ok, format!("{out}{err}"))
    }

    /// librdkafka properties for SASL over TLS as `user`.
    pub fn sasl_ssl_props<'a>(
        &'a self,
        ca: &'a str,
        mechanism: &'a str,
        user: &'a str,
        password: &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        vec![
            ("security.protocol", "SASL_SSL"),
            ("ssl.ca.location", ca),
            ("sasl.mechanism", mechanism),
            ("sasl.username", user),
            ("sasl.password", password),
        ]
    }
}
