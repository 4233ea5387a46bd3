//! Cron schedules in the user's timezone.
//!
//! Dialect: standard 5-field cron (`minute hour day-of-month month day-of-week`) with numbers,
//! names (`JAN`–`DEC`, `SUN`–`SAT`), `*`, ranges `a-b`, steps `*/n` and `a-b/n`, lists, and
//! the macros `@hourly @daily @midnight @weekly @monthly @yearly @annually`. When both
//! day-of-month and day-of-week are restricted a day matches if either matches (classic cron).
//! Anything else (seconds, years, `?`, `L`, `W`, `#`) is refused with a message saying why.
//!
//! Daylight saving: a local time that does not exist (spring forward) fires once at the first
//! valid instant after it; a local time that occurs twice (fall back) fires once, at the first
//! occurrence.
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// A parsed, validated schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("{0}")]
    Cron(String),
    #[error("'{0}' is not an IANA timezone name (for example Europe/Berlin or Asia/Shanghai)")]
    Timezone(String),
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

struct FieldRule {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// Value of the first name (`JAN` = 1, `SUN` = 0).
    names_start: u32,
}

const FIELDS: [FieldRule; 5] = [
    FieldRule {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        names_start: 0,
    },
    FieldRule {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        names_start: 0,
    },
    FieldRule {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
        names_start: 0,
    },
    FieldRule {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
        names_start: 1,
    },
    // 7 is accepted as Sunday, as in most crons.
    FieldRule {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: &DAYS,
        names_start: 0,
    },
];

impl Schedule {
    pub fn parse(expression: &str, timezone: &str) -> Result<Schedule, ScheduleError> {
        let tz: Tz = timezone
            .parse()
            .map_err(|_| ScheduleError::Timezone(timezone.to_string()))?;
        let expanded = expand_macro(expression.trim())?;
        let sets = check_fields(&expanded)?;
        check_can_fire(&sets)?;
        let cron = Cron::new(&expanded)
            .parse()
            .map_err(|e| ScheduleError::Cron(format!("cannot parse '{expression}': {e}")))?;
        Ok(Schedule { cron, tz })
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut cursor = after.with_timezone(&self.tz);
        // Inside a repeated (fall-back) hour, naive-local search can map back to the first
        // occurrence, which is not after `after`; step on until a later instant is found.
        for _ in 0..180 {
            let next = self.cron.find_next_occurrence(&cursor, false).ok()?;
            let next_utc = next.with_timezone(&Utc);
            if next_utc > after {
                return Some(next_utc);
            }
            cursor += Duration::minutes(1);
        }
        None
    }

    /// The next `count` fire times after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(count);
        let mut cursor = after;
        while out.len() < count {
            match self.next_after(cursor) {
                Some(t) => {
                    out.push(t);
                    cursor = t;
                }
                None => break,
            }
        }
        out
    }
}

fn expand_macro(expression: &str) -> Result<String, ScheduleError> {
    if let Some(stripped) = expression.strip_prefix('@') {
        let lower = format!("@{}", stripped.to_ascii_lowercase());
        return MACROS
            .iter()
            .find(|(m, _)| *m == lower)
            .map(|(_, e)| e.to_string())
            .ok_or_else(|| {
                ScheduleError::Cron(format!(
                    "unknown macro '{expression}'; accepted: {}",
                    MACROS.iter().map(|(m, _)| *m).collect::<Vec<_>>().join(" ")
                ))
            });
    }
    Ok(expression.to_string())
}

/// Checks each field's syntax and returns the set of values it allows.
fn check_fields(expression: &str) -> Result<Vec<Vec<bool>>, ScheduleError> {
    let parts: Vec<&str> = expression.split_whitespace().collect();
    if parts.len() == 6 || parts.len() == 7 {
        let hint = if expression.contains('?') {
            "it looks like an AWS EventBridge cron expression"
        } else {
            "seconds and years are not supported"
        };
        return Err(ScheduleError::Cron(format!(
            "'{expression}' has {} fields; {hint}. Use 5 fields: minute hour day-of-month month day-of-week",
            parts.len()
        )));
    }
    if parts.len() != 5 {
        return Err(ScheduleError::Cron(format!(
            "'{expression}' has {} fields; use 5: minute hour day-of-month month day-of-week",
            parts.len()
        )));
    }
    parts
        .iter()
        .zip(FIELDS.iter())
        .map(|(part, rule)| parse_field(part, rule))
        .collect()
}

fn parse_value(token: &str, rule: &FieldRule) -> Result<u32, ScheduleError> {
    if let Ok(n) = token.parse::<u32>() {
        if (rule.min..=rule.max).contains(&n) {
            return Ok(n);
        }
        return Err(ScheduleError::Cron(format!(
            "{} value {n} is out of range {}-{}",
            rule.name, rule.min, rule.max
        )));
    }
    let upper = token.to_ascii_uppercase();
    rule.names
        .iter()
        .position(|n| *n == upper)
        .map(|i| i as u32 + rule.names_start)
        .ok_or_else(|| {
            ScheduleError::Cron(format!(
                "'{token}' is not valid in the {} field (only numbers, names, *, ranges a-b, steps /n and lists; not ? L W #)",
                rule.name
            ))
        })
}

fn parse_field(field: &str, rule: &FieldRule) -> Result<Vec<bool>, ScheduleError> {
    let mut allowed = vec![false; rule.max as usize + 1];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    ScheduleError::Cron(format!(
                        "step '/{s}' in the {} field must be a positive number",
                        rule.name
                    ))
                })?;
                (r, step)
            }
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" {
            (rule.min, rule.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (parse_value(a, rule)?, parse_value(b, rule)?);
            if a > b {
                return Err(ScheduleError::Cron(format!(
                    "range {range} in the {} field runs backwards",
                    rule.name
                )));
            }
            (a, b)
        } else {
            let v = parse_value(range, rule)?;
            (v, if step > 1 { rule.max } else { v })
        };
        let mut v = lo;
        while v <= hi {
            allowed[v as usize] = true;
            // A step as large as u32 allows must end the loop, not overflow.
            match v.checked_add(step) {
                Some(next) => v = next,
                None => break,
            }
        }
    }
    if rule.name == "day-of-week" && allowed[7] {
        allowed[0] = true;
    }
    Ok(allowed)
}

/// Refuses expressions that can never fire (`0 0 31 2 *`) without searching the calendar.
fn check_can_fire(sets: &[Vec<bool>]) -> Result<(), ScheduleError> {
    let (dom, month, dow) = (&sets[2], &sets[3], &sets[4]);
    let dom_restricted = dom[1..].iter().any(|b| !b);
    let dow_restricted = dow[0..7].iter().any(|b| !b);
    if !dom_restricted || dow_restricted {
        return Ok(()); // any day, or the weekday rule always finds days
    }
    const DAYS_IN_MONTH: [usize; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let possible = (1..=12).any(|m| month[m] && (1..=DAYS_IN_MONTH[m - 1]).any(|d| dom[d]));
    if possible {
        Ok(())
    } else {
        Err(ScheduleError::Cron(
            "this expression can never fire: none of its days exist in its months".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn dom_or_dow_classic_rule() {
        // Worked out by hand: Fridays in Nov/Dec 2016 are 4, 11, 18, 25, Dec 2, 9; plus the 4th.
        let s = Schedule::parse("0 16 4 * 5", "UTC").unwrap();
        let got = s.upcoming(utc("2016-11-01T00:00:00Z"), 7);
        let want: Vec<DateTime<Utc>> = [
            "2016-11-04",
            "2016-11-11",
            "2016-11-18",
            "2016-11-25",
            "2016-12-02",
            "2016-12-04",
            "2016-12-09",
        ]
        .iter()
        .map(|d| utc(&format!("{d}T16:00:00Z")))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn leap_day() {
        let s = Schedule::parse("0 0 29 2 *", "UTC").unwrap();
        assert_eq!(
            s.next_after(utc("2025-01-01T00:00:00Z")),
            Some(utc("2028-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn spring_forward_in_new_york() {
        let s = Schedule::parse("30 2 * * *", "America/New_York").unwrap();
        // EST is UTC-5 before 2025-03-09 02:00 local, EDT (UTC-4) after; 02:30 does not exist
        // on the 9th, so it fires at the first valid instant, 03:00 EDT = 07:00Z.
        assert_eq!(
            s.next_after(utc("2025-03-08T00:00:00Z")),
            Some(utc("2025-03-08T07:30:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2025-03-08T07:30:00Z")),
            Some(utc("2025-03-09T07:00:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2025-03-09T07:00:00Z")),
            Some(utc("2025-03-10T06:30:00Z"))
        );
    }

    #[test]
    fn fall_back_fires_once_at_the_first_occurrence() {
        // 2025-11-02 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST).
        let s = Schedule::parse("30 1 * * *", "America/New_York").unwrap();
        assert_eq!(
            s.next_after(utc("2025-11-02T00:00:00Z")),
            Some(utc("2025-11-02T05:30:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2025-11-02T05:30:00Z")),
            Some(utc("2025-11-03T06:30:00Z"))
        );
        // Asked from inside the repeated hour, the second occurrence is skipped too.
        assert_eq!(
            s.next_after(utc("2025-11-02T06:00:00Z")),
            Some(utc("2025-11-03T06:30:00Z"))
        );
    }

    #[test]
    fn saving_never_fires_the_current_minute() {
        let s = Schedule::parse("0 9 * * *", "UTC").unwrap();
        // Saved at 08:59:30 → fires at 09:00 the same day; saved at 09:00:30 → the next day.
        assert_eq!(
            s.next_after(utc("2026-05-04T08:59:30Z")),
            Some(utc("2026-05-04T09:00:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2026-05-04T09:00:30Z")),
            Some(utc("2026-05-05T09:00:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2026-05-04T09:00:00Z")),
            Some(utc("2026-05-05T09:00:00Z"))
        );
    }

    #[test]
    fn an_impossible_expression_is_refused_without_a_calendar_search() {
        assert!(Schedule::parse("0 0 31 2 *", "UTC").is_err());
        assert!(Schedule::parse("0 0 30 2 *", "UTC").is_err());
        assert!(Schedule::parse("0 0 31 4,6,9,11 *", "UTC").is_err());
        // Allowed: the weekday field can still match.
        assert!(Schedule::parse("0 0 31 2 MON", "UTC").is_ok());
    }

    #[test]
    fn huge_steps_do_not_overflow() {
        // Each is refused or accepted, never a panic (debug builds check overflow).
        for cron in [
            "1/4294967295 * * * *",
            "* * */4294967295 * *",
            "* * * */4294967295 *",
            "0 0/4294967295 * * *",
        ] {
            let _ = Schedule::parse(cron, "UTC");
        }
        // A step wider than the field just leaves its start: minute 5 only.
        let s = Schedule::parse("5/100 * * * *", "UTC").unwrap();
        assert_eq!(
            s.next_after(utc("2026-05-04T09:06:00Z")),
            Some(utc("2026-05-04T10:05:00Z"))
        );
    }

    #[test]
    fn refusals_say_why() {
        let never = Schedule::parse("0 0 31 2 *", "UTC").unwrap_err();
        assert!(never.to_string().contains("never fire"), "{never}");
        let aws = Schedule::parse("0 12 * * ? *", "UTC").unwrap_err();
        assert!(aws.to_string().contains("AWS"), "{aws}");
        assert!(Schedule::parse("0 0 L * *", "UTC").is_err());
        assert!(Schedule::parse("61 * * * *", "UTC")
            .unwrap_err()
            .to_string()
            .contains("minute"));
        assert_eq!(
            Schedule::parse("* * * * *", "Mars/Olympus").unwrap_err(),
            ScheduleError::Timezone("Mars/Olympus".into())
        );
    }

    #[test]
    fn names_macros_and_sunday_seven() {
        assert!(Schedule::parse("0 9 * JAN-MAR MON-FRI", "Asia/Shanghai").is_ok());
        let hourly = Schedule::parse("@hourly", "UTC").unwrap();
        assert_eq!(
            hourly.next_after(utc("2025-01-01T10:15:00Z")),
            Some(utc("2025-01-01T11:00:00Z"))
        );
        let sunday = Schedule::parse("0 0 * * 7", "UTC").unwrap();
        // 2025-01-05 is a Sunday.
        assert_eq!(
            sunday.next_after(utc("2025-01-01T00:00:00Z")),
            Some(utc("2025-01-05T00:00:00Z"))
        );
    }
}
