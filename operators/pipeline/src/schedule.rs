//! Schedules of jobs that run in-process (`eval.schedule`, `lexembed eval --schedule`): a POSIX
//! five-field cron expression in UTC, parsed by `croner` (the spec's validation and the scheduler use
//! this one type), and the loop that runs a job at every firing until asked to stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use tracing::{error, info};

/// A parsed cron expression: minute hour day-of-month month day-of-week, UTC.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    expr: String,
}

impl Schedule {
    /// Parses five fields (`"0 3 * * *"`); the error says what is wrong.
    pub fn parse(expr: &str) -> Result<Self, String> {
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(expr)
            .map_err(|e| format!("cron {expr:?}: {e} (expected minute hour day month weekday)"))?;
        Ok(Self {
            cron,
            expr: expr.to_string(),
        })
    }

    /// The first firing strictly after `unix_secs`, as Unix seconds.
    pub fn next_after(&self, unix_secs: i64) -> Option<i64> {
        let now = DateTime::<Utc>::from_timestamp(unix_secs, 0)?;
        let next = self.cron.find_next_occurrence(&now, false).ok()?;
        Some(next.timestamp())
    }

    /// Runs `job` at every firing until `stop` is set (checked every second while waiting). A failed
    /// run is logged and the schedule goes on: the next firing may succeed, and a CronJob-less
    /// deployment must not die of one bad night.
    pub fn run<E: std::fmt::Display>(
        &self,
        stop: &AtomicBool,
        mut job: impl FnMut() -> Result<(), E>,
    ) {
        while !stop.load(Ordering::Relaxed) {
            let now = Utc::now().timestamp();
            let Some(next) = self.next_after(now) else {
                error!(schedule = %self.expr, "the schedule never fires again");
                return;
            };
            info!(schedule = %self.expr, next_in_s = next - now, "waiting for the next run");
            while Utc::now().timestamp() < next {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            if let Err(e) = job() {
                error!(schedule = %self.expr, "scheduled run failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nightly_at_three() {
        let s = Schedule::parse("0 3 * * *").unwrap();
        // 2026-11-27 11:52 UTC → 2026-11-28 03:00 UTC.
        let now = 1_795_780_320;
        assert_eq!(s.next_after(now), Some(1_795_834_800));
        assert_eq!(s.next_after(1_795_834_800), Some(1_795_834_800 + 86_400));
    }

    #[test]
    fn steps_lists_and_weekdays() {
        let s = Schedule::parse("*/15 * * * 1-5").unwrap();
        // 1970-01-03 was a Saturday: the next firing is Monday 1970-01-05 00:00.
        assert_eq!(s.next_after(2 * 86_400), Some(4 * 86_400));
        assert_eq!(s.next_after(4 * 86_400), Some(4 * 86_400 + 15 * 60));
        for bad in ["0 3 * *", "61 3 * * *", "0 0 3 * * *", "nightly"] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(e.contains("minute hour day month weekday"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_loop_stops_when_asked() {
        let stop = AtomicBool::new(true);
        let mut runs = 0;
        Schedule::parse("* * * * *").unwrap().run(&stop, || {
            runs += 1;
            Ok::<(), String>(())
        });
        assert_eq!(runs, 0);
    }
}
