//! Configs that follow their PEM files: rebuilt when a file's modification time changes (polled)
//! or on SIGHUP, for listeners and for the node's own client side alike.

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use crate::{TlsError, TlsFiles};

/// A config built from `files`; a rebuild that fails keeps the previous one, so a half-written
/// certificate never takes a listener or a peer connection down.
pub(crate) struct FromFiles<C> {
    files: TlsFiles,
    state: RwLock<(Arc<C>, Vec<Option<SystemTime>>)>,
}

impl<C> FromFiles<C> {
    pub(crate) fn new(
        files: TlsFiles,
        build: impl Fn(&TlsFiles) -> Result<C, TlsError>,
    ) -> Result<FromFiles<C>, TlsError> {
        let config = Arc::new(build(&files)?);
        let stamps = stamps(&files);
        Ok(FromFiles {
            files,
            state: RwLock::new((config, stamps)),
        })
    }

    pub(crate) fn current(&self) -> Arc<C> {
        Arc::clone(&self.state.read().unwrap_or_else(|p| p.into_inner()).0)
    }

    /// Rebuilds with `build` when `force`, or when a file changed since the last attempt.
    pub(crate) fn reload(&self, force: bool, build: impl Fn(&TlsFiles) -> Result<C, TlsError>) {
        let now = stamps(&self.files);
        if !force && self.state.read().unwrap_or_else(|p| p.into_inner()).1 == now {
            return;
        }
        match build(&self.files) {
            Ok(config) => {
                *self.state.write().unwrap_or_else(|p| p.into_inner()) = (Arc::new(config), now);
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                // Remember the stamps so a broken file is reported once, not every poll.
                self.state.write().unwrap_or_else(|p| p.into_inner()).1 = now;
                tracing::error!("TLS reload failed, keeping the previous certificate: {e}");
            }
        }
    }
}

fn stamps(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    [Some(&files.cert), Some(&files.key), files.ca.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// Something [`spawn_reloader`] keeps current.
pub(crate) trait Reload: Send + Sync {
    fn reload(&self, force: bool);
}

type Registered = Weak<dyn Reload>;

static RELOADABLE: RwLock<Vec<Registered>> = RwLock::new(Vec::new());

pub(crate) fn register(item: Registered) {
    let mut all = RELOADABLE.write().unwrap_or_else(|p| p.into_inner());
    all.retain(|w| w.strong_count() > 0);
    all.push(item);
}

/// Reloads every TLS server and client of this process on SIGHUP, and any whose files changed
/// every `poll`.
pub fn spawn_reloader(poll: Duration) {
    tokio::spawn(async move {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("no SIGHUP handler, certificates reload on file change only: {e}");
                None
            }
        };
        loop {
            let force = tokio::select! {
                _ = tokio::time::sleep(poll) => false,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            };
            let live: Vec<Arc<dyn Reload>> = RELOADABLE
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter_map(Weak::upgrade)
                .collect();
            for item in live {
                item.reload(force);
            }
        }
    });
}
