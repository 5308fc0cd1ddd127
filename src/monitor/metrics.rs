//! Prometheus text exposition format (for node_exporter's textfile collector): per pair lag,
//! last success time, bytes and duration of the last run, running flag, lock and state.

use std::fmt::Write as _;

use crate::model::StateKind;

/// One pair's figures as the metrics page shows them.
#[derive(Debug, Clone, Default)]
pub struct PairMetrics {
    pub fingerprint: String,
    pub source: String,
    pub destination: String,
    pub state: StateKind,
    pub lag_secs: Option<u64>,
    /// Unix seconds of the last successful initialize/update.
    pub last_success: Option<i64>,
    /// Bytes and seconds of the last finished run, and whether it succeeded.
    pub last_bytes: Option<u64>,
    pub last_seconds: Option<f64>,
    pub last_ok: Option<bool>,
    pub running: bool,
    pub locked: bool,
    pub runtime_secs: Option<u64>,
    /// Our snapshots beyond `keep` on the source and on the destination (None: not read).
    pub over_keep: Option<(u64, u64)>,
    /// Retention has left snapshots behind on more than one run in a row.
    pub retention_failing: bool,
}

/// A label value escaped as the format wants: backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labels(p: &PairMetrics) -> String {
    format!(
        "fingerprint=\"{}\",source=\"{}\",destination=\"{}\"",
        escape(&p.fingerprint),
        escape(&p.source),
        escape(&p.destination)
    )
}

/// The whole page: HELP and TYPE once per metric, then one sample per pair.
pub fn render(pairs: &[PairMetrics]) -> String {
    type Get = fn(&PairMetrics) -> Option<String>;
    let families: [(&str, &str, Get); 10] = [
        (
            "ferry_lag_seconds",
            "Seconds since the checkpoint snapshot was taken on the source.",
            |p| p.lag_secs.map(|v| v.to_string()),
        ),
        (
            "ferry_last_success_timestamp_seconds",
            "Unix time the last successful initialize or update finished.",
            |p| p.last_success.map(|v| v.to_string()),
        ),
        ("ferry_last_run_bytes", "Bytes the last finished run moved.", |p| {
            p.last_bytes.map(|v| v.to_string())
        }),
        ("ferry_last_run_seconds", "Duration of the last finished run.", |p| {
            p.last_seconds.map(|v| format!("{v:.3}"))
        }),
        (
            "ferry_last_run_success",
            "1 if the last finished run succeeded, else 0.",
            |p| p.last_ok.map(|v| u8::from(v).to_string()),
        ),
        ("ferry_running", "1 while a job of the pair runs, else 0.", |p| {
            Some(u8::from(p.running).to_string())
        }),
        (
            "ferry_locked",
            "1 if a job died holding the pair's lock (needs `ferry unlock`), else 0.",
            |p| Some(u8::from(p.locked).to_string()),
        ),
        (
            "ferry_runtime_seconds",
            "Seconds the running job has run (0 when idle).",
            |p| Some(p.runtime_secs.unwrap_or(0).to_string()),
        ),
        (
            "ferry_retention_failing",
            "1 if retention left snapshots behind on more than one run in a row, else 0.",
            |p| Some(u8::from(p.retention_failing).to_string()),
        ),
        ("ferry_pair_info", "Always 1; the labels describe the pair.", |_| {
            Some("1".into())
        }),
    ];
    let mut out = String::new();
    for (name, help, get) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for p in pairs {
            if let Some(v) = get(p) {
                let _ = writeln!(out, "{name}{{{}}} {v}", labels(p));
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP ferry_snapshots_over_keep Ferry snapshots of the pair beyond `keep` on one side.\n# TYPE ferry_snapshots_over_keep gauge"
    );
    for p in pairs {
        if let Some((s, d)) = p.over_keep {
            for (side, n) in [("source", s), ("destination", d)] {
                let _ = writeln!(out, "ferry_snapshots_over_keep{{{},side=\"{side}\"}} {n}", labels(p));
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP ferry_state 1 for the pair's replication state, 0 for the others.\n# TYPE ferry_state gauge"
    );
    for p in pairs {
        for s in StateKind::ALL {
            let _ = writeln!(
                out,
                "ferry_state{{{},state=\"{s}\"}} {}",
                labels(p),
                u8::from(p.state == s)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_and_escapes() {
        let p = PairMetrics {
            fingerprint: "ab".into(),
            source: "s1:tank/a\"b".into(),
            destination: "local:backup/a".into(),
            state: StateKind::Synchronized,
            lag_secs: Some(42),
            running: true,
            over_keep: Some((3, 0)),
            ..Default::default()
        };
        let t = render(&[p]);
        assert!(t.contains("# TYPE ferry_lag_seconds gauge\n"), "{t}");
        assert!(
            t.contains(
                "ferry_lag_seconds{fingerprint=\"ab\",source=\"s1:tank/a\\\"b\",destination=\"local:backup/a\"} 42\n"
            ),
            "{t}"
        );
        assert!(
            t.contains(",state=\"Synchronized\"} 1\n") && t.contains(",state=\"Unknown\"} 0\n"),
            "{t}"
        );
        assert!(
            t.contains("ferry_running{") && !t.contains("ferry_last_run_bytes{"),
            "{t}"
        );
        assert!(
            t.contains(",side=\"source\"} 3\n") && t.contains(",side=\"destination\"} 0\n"),
            "{t}"
        );
        assert!(t.contains("ferry_retention_failing{fingerprint=\"ab\""), "{t}");
    }
}
