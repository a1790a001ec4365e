//! `strom cert`: a local certificate authority and the certificates it signs, so a secured
//! cluster can be set up without openssl. ECDSA P-256 keys; PEM files.

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::TlsError;

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";

fn gen(e: impl std::fmt::Display) -> TlsError {
    TlsError::Generate(e.to_string())
}

fn write(path: &Path, text: &str, secret: bool) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if secret {
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|source| TlsError::Read {
            path: path.into(),
            source,
        })
}

fn validity(params: &mut CertificateParams, days: u32) {
    let now = std::time::SystemTime::now();
    // A little in the past, so a peer whose clock lags accepts a fresh certificate.
    params.not_before = (now - std::time::Duration::from_secs(3600)).into();
    params.not_after = (now + std::time::Duration::from_secs(u64::from(days) * 86_400)).into();
}

/// Creates `dir/ca.pem` and `dir/ca-key.pem` (refuses to overwrite an existing CA).
pub fn create_ca(dir: &Path, name: &str, days: u32) -> Result<(), TlsError> {
    let cert_path = dir.join(CA_CERT);
    if cert_path.exists() {
        return Err(gen(format!("{} already exists", cert_path.display())));
    }
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Read {
        path: dir.into(),
        source,
    })?;
    let key = KeyPair::generate().map_err(gen)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, days);
    let cert = params.self_signed(&key).map_err(gen)?;
    write(&dir.join(CA_KEY), &key.serialize_pem(), true)?;
    write(&cert_path, &cert.pem(), false)
}

/// Issues `dir/NAME.pem` and `dir/NAME-key.pem`, signed by the CA in `dir`: subject CN `name`
/// (the mTLS principal `User:NAME`), the given host names and IPs as alternative names, usable
/// as server and client certificate.
pub fn issue(dir: &Path, name: &str, hosts: &[String], days: u32) -> Result<(), TlsError> {
    let read = |f: &str| {
        let path = dir.join(f);
        std::fs::read_to_string(&path).map_err(|source| TlsError::Read { path, source })
    };
    let ca_key = KeyPair::from_pem(&read(CA_KEY)?).map_err(gen)?;
    let issuer = Issuer::from_ca_cert_pem(&read(CA_CERT)?, ca_key).map_err(gen)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
    params.distinguished_name.push(DnType::CommonName, name);
    for host in hosts {
        params.subject_alt_names.push(match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.clone().try_into().map_err(gen)?),
        });
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    validity(&mut params, days);
    let key = KeyPair::generate().map_err(gen)?;
    let cert = params.signed_by(&key, &issuer).map_err(gen)?;
    write(
        &dir.join(format!("{name}-key.pem")),
        &key.serialize_pem(),
        true,
    )?;
    write(&dir.join(format!("{name}.pem")), &cert.pem(), false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientAuth, TlsFiles, TlsServer};

    #[tokio::test]
    async fn issued_certificates_make_a_mutual_tls_connection() {
        let dir = tempfile::tempdir().unwrap();
        create_ca(dir.path(), "test CA", 30).unwrap();
        assert!(create_ca(dir.path(), "again", 30).is_err());
        issue(
            dir.path(),
            "node1",
            &["127.0.0.1".into(), "localhost".into()],
            30,
        )
        .unwrap();
        issue(dir.path(), "alice", &[], 30).unwrap();
        let files = |n: &str| TlsFiles {
            cert: dir.path().join(format!("{n}.pem")),
            key: dir.path().join(format!("{n}-key.pem")),
            ca: Some(dir.path().join("ca.pem")),
        };
        let server = TlsServer::new(files("node1"), ClientAuth::Required).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = server.accept(tcp).await.unwrap();
            crate::principal(&tls)
        });
        let config = crate::client_config(&files("alice"), true).unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _client = crate::connect(config, addr, tcp).await.unwrap();
        assert_eq!(accepted.await.unwrap().as_deref(), Some("User:alice"));
    }

    /// A node dialling its peers presents its renewed certificate after a reload, and keeps
    /// the last good one when the file is broken.
    #[tokio::test]
    async fn a_client_identity_follows_its_files() {
        let dir = tempfile::tempdir().unwrap();
        create_ca(dir.path(), "test CA", 30).unwrap();
        for name in ["server", "first", "second"] {
            issue(dir.path(), name, &["127.0.0.1".into()], 30).unwrap();
        }
        let live = |n: &str| dir.path().join(n);
        std::fs::copy(live("first.pem"), live("node.pem")).unwrap();
        std::fs::copy(live("first-key.pem"), live("node-key.pem")).unwrap();
        let server_files = TlsFiles {
            cert: live("server.pem"),
            key: live("server-key.pem"),
            ca: Some(live("ca.pem")),
        };
        let server = TlsServer::new(server_files, ClientAuth::Required).unwrap();
        let client = crate::TlsClient::new(
            TlsFiles {
                cert: live("node.pem"),
                key: live("node-key.pem"),
                ca: Some(live("ca.pem")),
            },
            true,
        )
        .unwrap();
        let presented = || {
            let (server, config) = (server.clone(), client.current());
            async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let accepted = tokio::spawn(async move {
                    let (tcp, _) = listener.accept().await.unwrap();
                    crate::principal(&server.accept(tcp).await.unwrap())
                });
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let _tls = crate::connect(config, addr, tcp).await.unwrap();
                accepted.await.unwrap()
            }
        };
        assert_eq!(presented().await.as_deref(), Some("User:first"));
        std::fs::copy(live("second.pem"), live("node.pem")).unwrap();
        std::fs::copy(live("second-key.pem"), live("node-key.pem")).unwrap();
        client.reload(true);
        assert_eq!(presented().await.as_deref(), Some("User:second"));
        std::fs::write(live("node.pem"), "not a certificate").unwrap();
        client.reload(true);
        assert_eq!(
            presented().await.as_deref(),
            Some("User:second"),
            "a broken file keeps the last good certificate"
        );
    }

    /// A renewed certificate is served after a reload, and a broken one keeps the old.
    #[tokio::test]
    async fn reload_follows_the_files_and_keeps_the_last_good_one() {
        let dir = tempfile::tempdir().unwrap();
        create_ca(dir.path(), "test CA", 30).unwrap();
        issue(dir.path(), "first", &["127.0.0.1".into()], 30).unwrap();
        issue(dir.path(), "second", &["127.0.0.1".into()], 30).unwrap();
        let live = |n: &str| dir.path().join(n);
        std::fs::copy(live("first.pem"), live("node.pem")).unwrap();
        std::fs::copy(live("first-key.pem"), live("node-key.pem")).unwrap();
        let files = TlsFiles {
            cert: live("node.pem"),
            key: live("node-key.pem"),
            ca: Some(live("ca.pem")),
        };
        let server = TlsServer::new(files.clone(), ClientAuth::None).unwrap();
        let served = |server: std::sync::Arc<TlsServer>| {
            let client = crate::client_config(&files, false).unwrap();
            async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let accept = tokio::spawn(async move {
                    let (tcp, _) = listener.accept().await.unwrap();
                    server.accept(tcp).await.map(drop)
                });
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let tls = crate::connect(client, addr, tcp).await.unwrap();
                accept.await.unwrap().unwrap();
                let cert = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
                crate::principal_of(&cert)
            }
        };
        assert_eq!(served(server.clone()).await.as_deref(), Some("User:first"));
        std::fs::copy(live("second.pem"), live("node.pem")).unwrap();
        std::fs::copy(live("second-key.pem"), live("node-key.pem")).unwrap();
        server.reload(true);
        assert_eq!(served(server.clone()).await.as_deref(), Some("User:second"));
        std::fs::write(live("node.pem"), "not a certificate").unwrap();
        server.reload(true);
        assert_eq!(
            served(server.clone()).await.as_deref(),
            Some("User:second"),
            "a broken file keeps the last good certificate"
        );
    }
}
