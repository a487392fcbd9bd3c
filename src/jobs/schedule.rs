//! When a job runs: once at a time, every N seconds, or on a cron expression read in an IANA
//! time zone. Pure functions of a given instant, so timing is tested with a controlled clock.
//!
//! A schedule has one next occurrence at a time: occurrences missed while the server was
//! down (or the job paused) collapse into one run, and the next one is computed from the
//! moment that run starts.

use crate::error::{AppError, AppResult};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// A job's schedule, as stored (JSON) and shown on every door.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Schedule {
    /// One run at a time (a past time runs at once).
    Once {
        /// The time.
        once: DateTime<Utc>,
    },
    /// A run every `every_secs` seconds from the time the schedule was set.
    Every {
        /// The interval.
        every_secs: i64,
    },
    /// Runs at the times a 5-field (minute precision) or 6-field (seconds first) cron
    /// expression matches, read in `timezone`.
    Cron {
        /// The expression.
        cron: String,
        /// IANA zone name (`Europe/Paris`); `UTC` by default.
        timezone: String,
    },
}

/// A schedule as a client writes it: exactly one of `once`, `every_secs`, `cron`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    /// RFC 3339 time or seconds since the epoch.
    pub once: Option<serde_json::Value>,
    /// Interval in seconds.
    pub every_secs: Option<i64>,
    /// Cron expression.
    pub cron: Option<String>,
    /// Zone of the cron expression.
    pub timezone: Option<String>,
}

/// Longest interval accepted (a year).
const MAX_EVERY_SECS: i64 = 366 * 24 * 3600;

impl ScheduleInput {
    /// Checks the input and builds the schedule; errors name the field
    /// (`schedule.cron`, …). Intervals below `min_every_secs` are refused.
    pub fn build(&self, min_every_secs: i64) -> AppResult<Schedule> {
        let given = [
            self.once.is_some(),
            self.every_secs.is_some(),
            self.cron.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            return Err(AppError::validation(
                "schedule",
                "give exactly one of schedule.once, schedule.every_secs, schedule.cron",
            ));
        }
        if self.timezone.is_some() && self.cron.is_none() {
            return Err(AppError::validation(
                "schedule.timezone",
                "a time zone applies to cron schedules only",
            ));
        }
        if let Some(v) = &self.once {
            return Ok(Schedule::Once {
                once: parse_time(v).ok_or_else(|| {
                    AppError::validation(
                        "schedule.once",
                        "schedule.once must be an RFC 3339 time or seconds since the epoch",
                    )
                })?,
            });
        }
        if let Some(n) = self.every_secs {
            if n < min_every_secs.max(1) || n > MAX_EVERY_SECS {
                return Err(AppError::validation(
                    "schedule.every_secs",
                    format!(
                        "schedule.every_secs must be between {} and {MAX_EVERY_SECS}",
                        min_every_secs.max(1)
                    ),
                ));
            }
            return Ok(Schedule::Every { every_secs: n });
        }
        let expr = self.cron.as_deref().unwrap_or_default().trim().to_string();
        let timezone = self.timezone.as_deref().unwrap_or("UTC").trim().to_string();
        let schedule = Schedule::Cron {
            cron: expr,
            timezone,
        };
        schedule.check()?;
        Ok(schedule)
    }
}

fn parse_time(v: &serde_json::Value) -> Option<DateTime<Utc>> {
    match v {
        serde_json::Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        serde_json::Value::Number(n) => {
            let secs = n.as_f64()?;
            if !(0.0..1e11).contains(&secs) {
                return None;
            }
            DateTime::from_timestamp_micros((secs * 1e6) as i64)
        }
        _ => None,
    }
}

fn parse_cron(expr: &str) -> AppResult<croner::Cron> {
    let fields = expr.split_whitespace().count();
    let nickname = expr.starts_with('@');
    if !nickname && !(5..=6).contains(&fields) {
        return Err(AppError::validation(
            "schedule.cron",
            format!("schedule.cron must have 5 or 6 fields, not {fields}"),
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(expr)
        .map_err(|e| AppError::validation("schedule.cron", format!("invalid cron expression: {e}")))
}

fn parse_zone(name: &str) -> AppResult<chrono_tz::Tz> {
    chrono_tz::Tz::from_str(name).map_err(|_| {
        AppError::validation(
            "schedule.timezone",
            format!("{name:?} is not an IANA time zone (like Europe/Paris)"),
        )
    })
}

impl Schedule {
    /// Validates what a stored or built schedule names (cron syntax, zone).
    pub fn check(&self) -> AppResult<()> {
        if let Schedule::Cron { cron, timezone } = self {
            parse_cron(cron)?;
            parse_zone(timezone)?;
            // An expression that never matches (30 February) is refused up front.
            if self.next_after(Utc::now(), Utc::now()).is_none() {
                return Err(AppError::validation(
                    "schedule.cron",
                    "this cron expression never matches",
                ));
            }
        }
        Ok(())
    }

    /// Whether the schedule has a single occurrence.
    pub fn is_once(&self) -> bool {
        matches!(self, Schedule::Once { .. })
    }

    /// The first occurrence of a schedule set at `anchor`.
    pub fn first_occurrence(&self, anchor: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Once { once } => Some(*once),
            _ => self.next_after(anchor, anchor),
        }
    }

    /// The first occurrence strictly after `after` (none for a one-off schedule, whose
    /// single occurrence is [`Schedule::first_occurrence`]). Interval ticks are counted from `anchor`.
    pub fn next_after(&self, after: DateTime<Utc>, anchor: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Once { .. } => None,
            Schedule::Every { every_secs } => {
                let step = (*every_secs).max(1);
                if anchor > after {
                    return Some(anchor + Duration::seconds(step));
                }
                let elapsed = (after - anchor).num_microseconds()?;
                let ticks = elapsed / (step * 1_000_000) + 1;
                Some(anchor + Duration::seconds(step.checked_mul(ticks)?))
            }
            Schedule::Cron { cron, timezone } => {
                let cron = parse_cron(cron).ok()?;
                let zone = parse_zone(timezone).ok()?;
                cron.find_next_occurrence(&after.with_timezone(&zone), false)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            }
        }
    }
}

/// Naive UTC (as stored) → aware.
pub fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn cron(expr: &str, tz: &str) -> Schedule {
        ScheduleInput {
            cron: Some(expr.into()),
            timezone: Some(tz.into()),
            ..Default::default()
        }
        .build(1)
        .unwrap()
    }

    #[test]
    fn intervals_tick_from_their_anchor_and_collapse_missed_ticks() {
        let s = Schedule::Every { every_secs: 60 };
        let anchor = at("2026-01-01T00:00:00Z");
        assert_eq!(s.first_occurrence(anchor), Some(at("2026-01-01T00:01:00Z")));
        assert_eq!(
            s.next_after(at("2026-01-01T00:01:00Z"), anchor),
            Some(at("2026-01-01T00:02:00Z"))
        );
        // Down for 10 minutes and 30 seconds: one next tick, not ten.
        assert_eq!(
            s.next_after(at("2026-01-01T00:10:30Z"), anchor),
            Some(at("2026-01-01T00:11:00Z"))
        );
    }

    #[test]
    fn cron_reads_its_time_zone() {
        // 09:00 in Paris is 08:00 UTC in winter.
        let s = cron("0 9 * * *", "Europe/Paris");
        assert_eq!(
            s.next_after(at("2026-01-10T12:00:00Z"), at("2026-01-10T12:00:00Z")),
            Some(at("2026-01-11T08:00:00Z"))
        );
        // Six fields: seconds first.
        let s = cron("*/15 * * * * *", "UTC");
        assert_eq!(
            s.next_after(at("2026-01-10T12:00:01Z"), at("2026-01-10T12:00:00Z")),
            Some(at("2026-01-10T12:00:15Z"))
        );
    }

    #[test]
    fn cron_follows_a_daylight_saving_change() {
        // Paris moves to summer time on 2026-03-29: 09:00 local goes from 08:00 to 07:00 UTC.
        let s = cron("0 9 * * *", "Europe/Paris");
        let a = at("2026-03-27T12:00:00Z");
        let first = s.next_after(a, a).unwrap();
        assert_eq!(first, at("2026-03-28T08:00:00Z"));
        let second = s.next_after(first, a).unwrap();
        assert_eq!(second, at("2026-03-29T07:00:00Z"));
        let third = s.next_after(second, a).unwrap();
        assert_eq!(third, at("2026-03-30T07:00:00Z"));
        // New York falls back on 2026-11-01: 01:30 local happens twice, the job runs once.
        let s = cron("30 1 * * *", "America/New_York");
        let a = at("2026-11-01T04:00:00Z");
        let first = s.next_after(a, a).unwrap();
        assert_eq!(first, at("2026-11-01T05:30:00Z"));
        let next = s.next_after(first, a).unwrap();
        assert!(next >= at("2026-11-02T06:30:00Z"), "ran twice: {next}");
    }

    #[test]
    fn bad_schedules_name_their_field() {
        let field = |input: ScheduleInput| {
            input.build(10).unwrap_err().details.unwrap()["field"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            field(ScheduleInput {
                cron: Some("61 * * * *".into()),
                ..Default::default()
            }),
            "schedule.cron"
        );
        assert_eq!(
            field(ScheduleInput {
                cron: Some("* * *".into()),
                ..Default::default()
            }),
            "schedule.cron"
        );
        assert_eq!(
            field(ScheduleInput {
                cron: Some("0 9 * * *".into()),
                timezone: Some("Mars/Olympus".into()),
                ..Default::default()
            }),
            "schedule.timezone"
        );
        assert_eq!(
            field(ScheduleInput {
                every_secs: Some(-5),
                ..Default::default()
            }),
            "schedule.every_secs"
        );
        assert_eq!(
            field(ScheduleInput {
                every_secs: Some(5),
                ..Default::default()
            }),
            "schedule.every_secs"
        );
        assert_eq!(
            field(ScheduleInput {
                once: Some(serde_json::json!("tomorrow")),
                ..Default::default()
            }),
            "schedule.once"
        );
        assert_eq!(field(ScheduleInput::default()), "schedule");
        let once = ScheduleInput {
            once: Some(serde_json::json!(1_800_000_000)),
            ..Default::default()
        }
        .build(10)
        .unwrap();
        assert_eq!(
            once,
            Schedule::Once {
                once: at("2027-01-15T08:00:00Z")
            }
        );
    }
}
