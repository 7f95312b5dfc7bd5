//! Cron schedules (`"0 3 * * *"`: minute hour day-of-month month day-of-week, UTC) for `lexembed eval
//! --schedule`: parsing and the next matching minute. Supports `*`, `a`, `a-b`, lists and `/step`.

use crate::error::{EvalError, Result};

/// A parsed five-field cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minute: Vec<bool>,
    hour: Vec<bool>,
    dom: Vec<bool>,
    month: Vec<bool>,
    dow: Vec<bool>,
    dom_any: bool,
    dow_any: bool,
}

fn field(spec: &str, lo: u32, hi: u32, name: &str) -> Result<(Vec<bool>, bool)> {
    let bad = |why: String| EvalError::Runtime(format!("cron {name} field {spec:?}: {why}"));
    let mut set = vec![false; hi as usize + 1];
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().map_err(|e| bad(e.to_string()))?),
            None => (part, 1),
        };
        if step == 0 {
            return Err(bad("step 0".into()));
        }
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (
                    a.parse().map_err(|_| bad(format!("{a} is not a number")))?,
                    b.parse().map_err(|_| bad(format!("{b} is not a number")))?,
                ),
                None => {
                    let v = r.parse().map_err(|_| bad(format!("{r} is not a number")))?;
                    (v, if step > 1 { hi } else { v })
                }
            },
        };
        if a < lo || b > hi || a > b {
            return Err(bad(format!("{a}-{b} is outside {lo}-{hi}")));
        }
        for v in (a..=b).step_by(step as usize) {
            set[v as usize] = true;
        }
    }
    Ok((set, spec == "*"))
}

impl Schedule {
    pub fn parse(expr: &str) -> Result<Self> {
        let f: Vec<&str> = expr.split_whitespace().collect();
        if f.len() != 5 {
            return Err(EvalError::Runtime(format!(
                "cron {expr:?}: expected 5 fields (minute hour day month weekday)"
            )));
        }
        let (minute, _) = field(f[0], 0, 59, "minute")?;
        let (hour, _) = field(f[1], 0, 23, "hour")?;
        let (dom, dom_any) = field(f[2], 1, 31, "day-of-month")?;
        let (month, _) = field(f[3], 1, 12, "month")?;
        let (mut dow, dow_any) = field(f[4], 0, 7, "day-of-week")?;
        if dow[7] {
            dow[0] = true; // 7 is Sunday too
        }
        Ok(Self {
            minute,
            hour,
            dom,
            month,
            dow,
            dom_any,
            dow_any,
        })
    }

    /// The first matching minute strictly after `unix_secs`, as Unix seconds.
    pub fn next_after(&self, unix_secs: i64) -> Option<i64> {
        let mut t = (unix_secs.div_euclid(60) + 1) * 60;
        for _ in 0..(60 * 24 * 366 * 4) {
            if self.matches(t) {
                return Some(t);
            }
            t += 60;
        }
        None
    }

    fn matches(&self, t: i64) -> bool {
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400);
        let (_, month, day) = crate::report::civil(days);
        let weekday = (days + 4).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
        let day_ok = match (self.dom_any, self.dow_any) {
            (true, true) => true,
            (true, false) => self.dow[weekday],
            (false, true) => self.dom[day as usize],
            // Both restricted: cron matches either.
            (false, false) => self.dom[day as usize] || self.dow[weekday],
        };
        self.minute[(secs % 3600 / 60) as usize]
            && self.hour[(secs / 3600) as usize]
            && self.month[month as usize]
            && day_ok
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
        let next = s.next_after(now).unwrap();
        assert_eq!(next % 86_400, 3 * 3600);
        assert!(next > now && next - now < 86_400);
    }

    #[test]
    fn steps_lists_and_weekdays() {
        let s = Schedule::parse("*/15 * * * 1-5").unwrap();
        // 1970-01-03 was a Saturday: the next match is Monday 1970-01-05 00:00.
        assert_eq!(s.next_after(2 * 86_400), Some(4 * 86_400));
        assert_eq!(s.next_after(4 * 86_400), Some(4 * 86_400 + 15 * 60));
        assert!(Schedule::parse("0 3 * *").is_err());
        assert!(Schedule::parse("61 3 * * *").is_err());
    }
}
