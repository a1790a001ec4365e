//! Result formatting: latency histograms and aligned result tables.

use hdrhistogram::Histogram;

/// Latency histogram in µs: 1 µs to 1 h at 3 significant digits.
pub fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 3_600_000_000, 3)?)
}

/// p50, p99, p99.9 and max of a µs histogram, in ms with µs precision ("-" when empty).
pub fn percentiles_ms(hist: &Histogram<u64>) -> [String; 4] {
    if hist.is_empty() {
        return std::array::from_fn(|_| "-".to_string());
    }
    let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
    [
        ms(hist.value_at_quantile(0.50)),
        ms(hist.value_at_quantile(0.99)),
        ms(hist.value_at_quantile(0.999)),
        ms(hist.max()),
    ]
}

/// Header cells for [`percentiles_ms`].
pub const PERCENTILE_HEADERS: [&str; 4] = ["p50_ms", "p99_ms", "p99.9_ms", "max_ms"];

/// Header for throughput in decimal megabytes (10^6 bytes) per second.
pub const MBPS_HEADER: &str = "MB/s(1e6B)";

/// Decimal megabytes (10^6 bytes) per second.
pub fn mb_per_sec(bytes: u64, secs: f64) -> String {
    format!("{:.2}", per_sec(bytes, secs) / 1e6)
}

/// `count / secs` (0 when no time has passed), formatted with no decimals.
pub fn rate(count: u64, secs: f64) -> String {
    format!("{:.0}", per_sec(count, secs))
}

fn per_sec(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// A whitespace-aligned table: one header line, then one line per row. Columns are separated
/// by at least two spaces and contain no spaces themselves, so `awk`/`column` parse it.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with the given column names.
    pub fn new<S: AsRef<str>>(header: &[S]) -> Table {
        Table {
            header: header.iter().map(|h| h.as_ref().to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; it should have one cell per column.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders the table as text.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(String::len).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(cell.len());
                }
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
                .collect();
            padded.join("  ").trim_end().to_string()
        };
        let mut out = line(&self.header);
        for row in &self.rows {
            out.push('\n');
            out.push_str(&line(row));
        }
        out
    }

    /// Prints the table to stdout.
    pub fn print(&self) {
        println!("{}", self.render());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let mut table = Table::new(&["a", "long_name"]);
        table.row(vec!["12345".into(), "x".into()]);
        assert_eq!(table.render(), "a      long_name\n12345  x");
    }

    #[test]
    fn percentiles_of_empty_histogram() -> anyhow::Result<()> {
        let mut hist = latency_histogram()?;
        assert_eq!(percentiles_ms(&hist)[0], "-");
        hist.record(1500)?;
        assert_eq!(percentiles_ms(&hist)[3], "1.500");
        Ok(())
    }
}
