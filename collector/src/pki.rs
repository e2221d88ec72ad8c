//! `caretaker-collector init`: the data directory with its CA, the server
//! certificate signed by it, and the secrets an operator hands out (the
//! enrollment token for agents, the API token for people and scripts, the
//! metrics token for Prometheus).
//! Agents pin the CA, so the collector needs no public certificate.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use sha2::{Digest, Sha256};

/// Files in the data directory.
pub struct Paths {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub enrollment_token: PathBuf,
    pub api_token: PathBuf,
    /// The bearer token a scrape of `/metrics` must carry (`[metrics] auth = "bearer"`).
    pub metrics_token: PathBuf,
    pub database: PathBuf,
}

impl Paths {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            ca_cert: data_dir.join("ca.pem"),
            ca_key: data_dir.join("ca.key"),
            server_cert: data_dir.join("server.pem"),
            server_key: data_dir.join("server.key"),
            enrollment_token: data_dir.join("enrollment-token"),
            api_token: data_dir.join("api-token"),
            metrics_token: data_dir.join("metrics-token"),
            database: data_dir.join("caretaker.db"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("generating certificates: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("no randomness from the OS: {0}")]
    Random(getrandom::Error),
}

/// A fresh random secret: 32 bytes as 64 hex characters.
pub fn new_secret() -> Result<String, PkiError> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).map_err(PkiError::Random)?;
    Ok(hex::encode(b))
}

/// How secrets are kept in the store: never in clear.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(contents).map_err(io)?;
    f.sync_all().map_err(io)
}

/// What `init` made, for printing.
pub struct Initialized {
    pub enrollment_token: String,
    pub api_token: String,
}

/// Creates the CA, server certificate (for `names`: DNS names or IP addresses)
/// and tokens. Refuses to overwrite an existing CA.
pub fn init(data_dir: &Path, names: &[String]) -> Result<Initialized, PkiError> {
    let p = Paths::new(data_dir);
    std::fs::create_dir_all(data_dir).map_err(|source| PkiError::Io {
        path: data_dir.into(),
        source,
    })?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Caretaker collector CA");
    ca_params.distinguished_name.push(DnType::OrganizationName, "Caretaker");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;

    let mut server_params = CertificateParams::new(names.to_vec())?;
    server_params.distinguished_name.push(
        DnType::CommonName,
        names.first().map(String::as_str).unwrap_or("localhost"),
    );
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let server_key = KeyPair::generate()?;
    let server = server_params.signed_by(&server_key, &ca, &ca_key)?;

    let enrollment_token = new_secret()?;
    let api_token = new_secret()?;
    // The CA key is written first with create_new: a second init fails here
    // before touching anything.
    write_file(&p.ca_key, ca_key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&p.ca_cert, ca.pem().as_bytes(), 0o644)?;
    write_file(&p.server_key, server_key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&p.server_cert, server.pem().as_bytes(), 0o644)?;
    write_file(&p.enrollment_token, format!("{enrollment_token}\n").as_bytes(), 0o600)?;
    write_file(&p.api_token, format!("{api_token}\n").as_bytes(), 0o600)?;
    write_metrics_token(&p.metrics_token)?;
    Ok(Initialized {
        enrollment_token,
        api_token,
    })
}

/// Writes a new random metrics token to `path` (owner-only; never over an
/// existing file).
pub fn write_metrics_token(path: &Path) -> Result<(), PkiError> {
    write_file(path, format!("{}\n", new_secret()?).as_bytes(), 0o600)
}

/// Reads a token file written by `init`.
pub fn read_token(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| PkiError::Io {
            path: path.into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_everything_once() {
        let Ok(dir) = tempfile::tempdir() else { return };
        let made = init(dir.path(), &["localhost".into(), "127.0.0.1".into()]);
        assert!(made.is_ok());
        let p = Paths::new(dir.path());
        for f in [
            &p.ca_cert,
            &p.ca_key,
            &p.server_cert,
            &p.server_key,
            &p.enrollment_token,
            &p.api_token,
            &p.metrics_token,
        ] {
            assert!(f.exists(), "{}", f.display());
        }
        let again = init(dir.path(), &["localhost".into()])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(again.contains("ca.key"), "{again}");
        assert_eq!(read_token(&p.enrollment_token).ok().map(|t| t.len()), Some(64));
        assert_eq!(read_token(&p.metrics_token).ok().map(|t| t.len()), Some(64));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p.metrics_token).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
    }

    #[test]
    fn secrets_are_hashed() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
