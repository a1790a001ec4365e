//! Progress of a long command on stderr: a bar on a terminal (indicatif), and when stderr is a
//! file or a pipe (CI logs, scripts) a plain line at most every few seconds, so a long run is
//! never silent and never floods a log.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain progress line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub struct Meter {
    bar: Option<ProgressBar>,
    label: &'static str,
    printed: Instant,
}

impl Meter {
    /// A meter of `total` steps of `unit` (e.g. "s", "partitions").
    pub fn new(label: &'static str, total: u64, unit: &str) -> Meter {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total.max(1));
            let template =
                format!("{{spinner}} {label} [{{bar:30}}] {{pos}}/{{len}} {unit}  {{msg}}");
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Meter {
            bar,
            label,
            printed: Instant::now(),
        }
    }

    /// Moves to `position`; `line` (built only when shown) says where things stand.
    pub fn update(&mut self, position: u64, line: impl FnOnce() -> String) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(position);
                bar.set_message(line());
            }
            None if self.printed.elapsed() >= PLAIN_EVERY => {
                self.printed = Instant::now();
                eprintln!("{}: {}", self.label, line());
            }
            None => {}
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
