//! Progress of a benchmark run on stderr while it runs: a bar on a terminal (indicatif), a
//! plain line every few seconds when stderr is a file or a pipe (CI logs), so a long run is
//! never silent. Counts come from [`ACKED`], which every producer's [`super::plan::Stats::ack`]
//! bumps.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Acknowledgements received by this process's benchmark producers so far.
pub static ACKED: AtomicU64 = AtomicU64::new(0);

/// How often a plain progress line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Shows progress until dropped: `warmup` then `duration`, as time passes.
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn start(warmup: Duration, duration: Duration) -> Progress {
        let started = Instant::now();
        let total = warmup + duration;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total.as_secs().max(1));
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} s  {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            let mut last = (Instant::now(), ACKED.load(Ordering::Relaxed));
            let mut printed = Instant::now();
            loop {
                tick.tick().await;
                let now = Instant::now();
                let acked = ACKED.load(Ordering::Relaxed);
                let rate =
                    (acked - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
                last = (now, acked);
                let elapsed = now.duration_since(started);
                let phase = if elapsed < warmup {
                    "warm-up"
                } else {
                    "measuring"
                };
                let msg = format!("{phase}: {acked} records acknowledged, {rate:.0}/s");
                match &shown {
                    Some(bar) => {
                        bar.set_position(elapsed.as_secs().min(total.as_secs()));
                        bar.set_message(msg);
                    }
                    None if now.duration_since(printed) >= PLAIN_EVERY => {
                        printed = now;
                        eprintln!(
                            "progress: {:.0} s of {} s, {msg}",
                            elapsed.as_secs_f64(),
                            total.as_secs()
                        );
                    }
                    None => {}
                }
            }
        });
        Progress { task, bar }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
