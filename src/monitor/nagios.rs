//! Nagios plugin output: one line `FERRY LEVEL - summary | perfdata`, exit code from the level.

use std::time::Duration;

use super::Level;

/// One pair's figures as a monitoring check sees them.
#[derive(Debug, Clone)]
pub struct Check {
    /// The pair's destination as DEST accepts it.
    pub name: String,
    pub level: Level,
    /// Why: "Synchronized, lag 5m00s", "lag 2d > clag 1d", "Locked".
    pub summary: String,
    pub lag: Option<Duration>,
    pub runtime: Option<Duration>,
    pub wlag: Duration,
    pub clag: Duration,
    pub wrun: Duration,
    pub crun: Duration,
}

/// Perfdata labels must not contain quotes or `=`; dataset names cannot, but be sure.
fn label(name: &str, what: &str) -> String {
    format!("'{}_{}'", name.replace(['\'', '='], "_"), what)
}

/// The plugin line for one or many pairs; the level is the worst of them.
pub fn line(checks: &[Check]) -> (Level, String) {
    let level = checks.iter().fold(Level::Ok, |acc, c| acc.worst(c.level));
    let level = if checks.is_empty() { Level::Unknown } else { level };
    let summary = if checks.len() == 1 {
        format!("{}: {}", checks[0].name, checks[0].summary)
    } else if checks.is_empty() {
        "no pairs configured".to_string()
    } else {
        let bad: Vec<String> = checks
            .iter()
            .filter(|c| c.level != Level::Ok)
            .map(|c| format!("{}: {}", c.name, c.summary))
            .collect();
        let ok = checks.iter().filter(|c| c.level == Level::Ok).count();
        if bad.is_empty() {
            format!("{ok} pairs ok")
        } else {
            format!("{}; {ok} of {} pairs ok", bad.join(", "), checks.len())
        }
    };
    let single = checks.len() == 1;
    let mut perf = Vec::new();
    for c in checks {
        let (l, r) = if single {
            ("'lag'".to_string(), "'runtime'".to_string())
        } else {
            (label(&c.name, "lag"), label(&c.name, "runtime"))
        };
        if let Some(lag) = c.lag {
            perf.push(format!(
                "{l}={}s;{};{};0",
                lag.as_secs(),
                c.wlag.as_secs(),
                c.clag.as_secs()
            ));
        }
        let run = c.runtime.unwrap_or_default();
        perf.push(format!(
            "{r}={}s;{};{};0",
            run.as_secs(),
            c.wrun.as_secs(),
            c.crun.as_secs()
        ));
    }
    let text = if perf.is_empty() {
        format!("FERRY {} - {}", level.word(), summary)
    } else {
        format!("FERRY {} - {} | {}", level.word(), summary, perf.join(" "))
    };
    (level, text)
}

/// The plugin line for an action on these pairs: their status, or CRITICAL naming the action's
/// failure with the pairs' perfdata kept.
pub fn report(checks: &[Check], failed: Option<&str>) -> (Level, String) {
    match failed {
        Some(msg) => (
            Level::Critical,
            format!("FERRY CRITICAL - {msg}{}", perfdata(&line(checks).1)),
        ),
        None => line(checks),
    }
}

/// The ` | perfdata` tail of a plugin line (empty if it has none).
fn perfdata(line: &str) -> String {
    line.split_once(" | ")
        .map(|(_, p)| format!(" | {p}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, level: Level, lag: u64) -> Check {
        Check {
            name: name.into(),
            level,
            summary: "Synchronized".into(),
            lag: Some(Duration::from_secs(lag)),
            runtime: None,
            wlag: Duration::from_secs(7200),
            clag: Duration::from_secs(86400),
            wrun: Duration::from_secs(3600),
            crun: Duration::from_secs(21600),
        }
    }

    #[test]
    fn one_pair() {
        let (l, t) = line(&[check("backup/data", Level::Ok, 300)]);
        assert_eq!(l, Level::Ok);
        assert_eq!(
            t,
            "FERRY OK - backup/data: Synchronized | 'lag'=300s;7200;86400;0 'runtime'=0s;3600;21600;0"
        );
    }

    #[test]
    fn many_pairs_take_the_worst() {
        let (l, t) = line(&[check("a", Level::Ok, 1), check("b", Level::Critical, 90000)]);
        assert_eq!(l, Level::Critical);
        assert!(
            t.starts_with("FERRY CRITICAL - b: Synchronized; 1 of 2 pairs ok | 'a_lag'=1s"),
            "{t}"
        );
        assert_eq!(line(&[]).0, Level::Unknown);
    }
}
