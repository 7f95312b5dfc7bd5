//! Schedules of jobs that run in-process (`eval.schedule`, `lexembed eval --schedule`): a POSIX
//! five-field cron expression with crontab(5)'s semantics, in UTC or an IANA time zone, parsed by
//! `croner` (the spec's validation and the scheduler use this one type), and the loop that runs a job
//! at every firing until asked to stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use tracing::{error, info};

/// How far ahead a schedule must fire at least once to be valid: eight years holds a 29 February.
const MUST_FIRE_WITHIN_SECS: i64 = 8 * 366 * 86_400;

/// A parsed cron expression: minute hour day-of-month month day-of-week, read on the wall clock of
/// a time zone (UTC by default).
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    expr: String,
    tz: Tz,
}

impl Schedule {
    /// Parses five fields (`"0 3 * * *"`) in UTC; the error says what is wrong.
    pub fn parse(expr: &str) -> Result<Self, String> {
        Self::parse_in(expr, None)
    }

    /// Parses five fields read in time zone `tz` (an IANA name, `Europe/Madrid`; `None`: UTC). A
    /// schedule that never fires (`0 0 30 2 *`) is refused.
    ///
    /// Day of month and day of week combine as crontab(5) says: when both are restricted a day
    /// matching either fires, but a field starting with `*` (`*/2` included) counts as unrestricted,
    /// so `0 0 */2 * 1` fires on Mondays that are odd days of the month. (croner alone treats only a
    /// bare `*` so, and would fire on every odd day and every Monday.)
    pub fn parse_in(expr: &str, tz: Option<&str>) -> Result<Self, String> {
        let tz = match tz {
            None => Tz::UTC,
            Some(name) => name.parse::<Tz>().map_err(|_| {
                format!("time zone {name:?} is not an IANA zone name (e.g. Europe/Madrid, UTC)")
            })?,
        };
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let star_day = [2, 4]
            .iter()
            .any(|&i| fields.get(i).is_some_and(|f| f.starts_with('*')));
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .dom_and_dow(star_day)
            .build();
        let cron = parser
            .parse(expr)
            .map_err(|e| format!("cron {expr:?}: {e} (expected minute hour day month weekday)"))?;
        let schedule = Self {
            cron,
            expr: expr.to_string(),
            tz,
        };
        let now = Utc::now().timestamp();
        match schedule.next_after(now) {
            Some(next) if next - now <= MUST_FIRE_WITHIN_SECS => Ok(schedule),
            _ => Err(format!(
                "cron {expr:?} never fires (no such date, e.g. 30 February)"
            )),
        }
    }

    /// The first firing strictly after `unix_secs`, as Unix seconds.
    pub fn next_after(&self, unix_secs: i64) -> Option<i64> {
        let now = DateTime::<Utc>::from_timestamp(unix_secs, 0)?.with_timezone(&self.tz);
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
            info!(schedule = %self.expr, tz = %self.tz, next_in_s = next - now, "waiting for the next run");
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

    /// `*/2` in the day of month restricts it, and being written with a `*` it combines with the
    /// day of week by AND (crontab(5)): Mondays that are odd days of the month. The table is
    /// crontab's answer from 2027-01-01 (worked out by hand: odd-day Mondays of 2027).
    #[test]
    fn a_starred_day_field_combines_with_the_weekday_as_crontab_says() {
        let s = Schedule::parse("0 0 */2 * 1").unwrap();
        let want = [
            "2027-01-11",
            "2027-01-25",
            "2027-02-01",
            "2027-02-15",
            "2027-03-01",
            "2027-03-15",
            "2027-03-29",
            "2027-04-05",
        ];
        let mut t = 1_798_761_600; // 2027-01-01 00:00 UTC
        for day in want {
            t = s.next_after(t).unwrap();
            let got = DateTime::<Utc>::from_timestamp(t, 0).unwrap();
            assert_eq!(
                got.format("%Y-%m-%d %H:%M").to_string(),
                format!("{day} 00:00")
            );
        }
        // Both restricted, neither starred: either day fires (the 1st, the 15th, and every Monday).
        let or = Schedule::parse("0 0 1,15 * 1").unwrap();
        let mut t = 1_798_761_600;
        let mut days = Vec::new();
        for _ in 0..5 {
            t = or.next_after(t).unwrap();
            days.push(
                DateTime::<Utc>::from_timestamp(t, 0)
                    .unwrap()
                    .format("%d")
                    .to_string(),
            );
        }
        assert_eq!(days, ["04", "11", "15", "18", "25"]);
    }

    #[test]
    fn schedules_that_never_fire_and_unknown_zones_are_refused() {
        for bad in ["0 0 30 2 *", "0 0 31 4,6,9,11 *"] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(e.contains("never fires"), "{bad}: {e}");
        }
        Schedule::parse("0 0 29 2 *").expect("29 February comes every four years");
        let e = Schedule::parse_in("0 3 * * *", Some("Europe/Madird")).unwrap_err();
        assert!(e.contains("Europe/Madird") && e.contains("IANA"), "{e}");
    }

    /// 03:00 on Madrid's wall clock, across both changes of 2027: 02:00 UTC in winter, 01:00 UTC in
    /// summer, once a day, the days of the change included.
    #[test]
    fn a_zoned_schedule_fires_at_local_time_across_daylight_saving_changes() {
        let s = Schedule::parse_in("0 3 * * *", Some("Europe/Madrid")).unwrap();
        let firings = |from: i64, n: usize| {
            let mut t = from;
            (0..n)
                .map(|_| {
                    t = s.next_after(t).unwrap();
                    t
                })
                .collect::<Vec<_>>()
        };
        // From 2027-03-26 12:00 UTC: 27 March (CET), 28 (the change, CEST), 29, 30.
        assert_eq!(
            firings(1_806_062_400, 4),
            [1_806_112_800, 1_806_195_600, 1_806_282_000, 1_806_368_400]
        );
        // From 2027-10-29 12:00 UTC: 30 October (CEST), 31 (back to CET), 1 November.
        assert_eq!(
            firings(1_824_811_200, 3),
            [1_824_858_000, 1_824_948_000, 1_825_034_400]
        );
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
