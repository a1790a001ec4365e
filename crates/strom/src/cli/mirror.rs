//! `strom mirror status`: every mirror connector's lag, per mirrored topic, from the
//! connector REST API (the `progress` each running mirror task reports in its status).

use std::collections::BTreeMap;

use super::connector::{call, Client, ConnectArgs};

#[derive(clap::Subcommand, Debug)]
pub enum MirrorCommand {
    /// Lag of each mirror connector (or only NAME), per mirrored topic.
    Status { name: Option<String> },
}

/// The class names a mirror connector may be created with.
const MIRROR_CLASSES: [&str; 3] = [
    "mirror",
    "org.apache.kafka.connect.mirror.MirrorSourceConnector",
    "MirrorSourceConnector",
];

pub fn run(args: &ConnectArgs, command: MirrorCommand) -> anyhow::Result<()> {
    let MirrorCommand::Status { name } = command;
    let client = Client::new(args)?;
    let base = args.url.trim_end_matches('/');
    let all = call(
        &client,
        "GET",
        &format!("{base}/connectors?expand=status&expand=info"),
        None,
    )?;
    let mirrors = all.as_object().into_iter().flatten().filter(|(n, v)| {
        let class = v["info"]["config"]["connector.class"]
            .as_str()
            .unwrap_or("");
        MIRROR_CLASSES.contains(&class.trim()) && name.as_ref().is_none_or(|want| want == *n)
    });
    println!(
        "{:<24} {:<10} {:<14} {:<40} {:>10} {:>14} {:>14}",
        "NAME",
        "STATE",
        "SOURCE",
        "TOPIC -> TARGET",
        "PARTITIONS",
        "RECORDS_BEHIND",
        "SECONDS_BEHIND"
    );
    let mut shown = 0;
    for (n, v) in mirrors {
        shown += 1;
        let task = &v["status"]["tasks"][0];
        let state = task["state"]
            .as_str()
            .or(v["status"]["connector"]["state"].as_str())
            .unwrap_or("UNASSIGNED");
        let progress = &task["progress"];
        let source = progress["source"].as_str().unwrap_or("-");
        // Per topic: partitions, records behind (summed), seconds behind (the worst).
        let mut topics: BTreeMap<(String, String), (usize, i64, Option<i64>)> = BTreeMap::new();
        for p in progress["partitions"].as_array().into_iter().flatten() {
            let key = (
                p["topic"].as_str().unwrap_or("?").to_string(),
                p["target"].as_str().unwrap_or("?").to_string(),
            );
            let e = topics.entry(key).or_insert((0, 0, Some(0)));
            e.0 += 1;
            e.1 += p["records_behind"].as_i64().unwrap_or(0);
            e.2 = match (e.2, p["seconds_behind"].as_i64()) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        let seconds = |s: Option<i64>| s.map_or("?".to_string(), |s| s.to_string());
        println!(
            "{n:<24} {state:<10} {source:<14} {:<40} {:>10} {:>14} {:>14}",
            "(all)",
            topics.values().map(|t| t.0).sum::<usize>(),
            progress["records_behind"]
                .as_i64()
                .map_or("?".into(), |r| r.to_string()),
            seconds(progress["seconds_behind"].as_i64()),
        );
        for ((topic, target), (partitions, behind, secs)) in topics {
            println!(
                "{:<24} {:<10} {:<14} {:<40} {partitions:>10} {behind:>14} {:>14}",
                "",
                "",
                "",
                format!("{topic} -> {target}"),
                seconds(secs)
            );
        }
        if let Some(trace) = task["trace"].as_str() {
            println!("{:<24} {trace}", "");
        }
    }
    if shown == 0 {
        if let Some(n) = name {
            anyhow::bail!("no mirror connector named {n}");
        }
    }
    Ok(())
}
