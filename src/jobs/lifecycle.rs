//! The life of a job row, as pure transitions on [`Job`] at a given instant. The scheduler
//! and the services load a row (locked), apply one transition and store it, so every rule
//! about states, retries and the schedule lives here and is tested with a controlled clock.
//!
//! A *series* is the attempts at one occurrence: it starts when the schedule comes due (or
//! someone asks to run now), repeats failed attempts after an exponential backoff up to
//! `max_attempts`, and ends when an attempt succeeds, is cancelled, or the attempts are used
//! up. A one-off job whose occurrence is consumed then keeps that end as its outcome.

use crate::db::enums::{JobState, RunCause, RunOutcome};
use crate::db::models::Job;
use crate::jobs::schedule::utc;
use chrono::{Duration, NaiveDateTime};

/// Retry timing.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Wait after the first failed attempt.
    pub base_secs: i64,
    /// Longest wait.
    pub max_secs: i64,
}

impl Backoff {
    /// The wait after failed attempt number `attempt` (1-based): base × 2^(attempt-1).
    pub fn after(&self, attempt: i32) -> Duration {
        let shift = (attempt.max(1) - 1).min(30) as u32;
        let secs = self
            .base_secs
            .max(0)
            .saturating_mul(1i64 << shift)
            .min(self.max_secs.max(0));
        Duration::seconds(secs)
    }
}

/// Recomputes what users see (`state`) and when a worker should claim the job (`due_at`).
pub fn settle(job: &mut Job, now: NaiveDateTime) {
    let running = job.current_run_id.is_some();
    job.state = if running {
        JobState::Running
    } else if job.paused {
        JobState::Paused
    } else {
        job.outcome.unwrap_or(JobState::Scheduled)
    };
    let scheduled = if job.paused {
        None
    } else {
        match (job.next_run_at, job.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    };
    job.due_at = if running {
        None
    } else if job.run_now {
        Some(scheduled.map_or(now, |s| s.min(now)))
    } else {
        scheduled
    };
    job.updated_at = now;
}

/// Which run a due job starts now, if any.
pub fn cause_of(job: &Job, now: NaiveDateTime) -> Option<RunCause> {
    if job.current_run_id.is_some() {
        return None;
    }
    let due = |t: Option<NaiveDateTime>| !job.paused && t.is_some_and(|t| t <= now);
    if due(job.retry_at) {
        Some(RunCause::Retry)
    } else if due(job.next_run_at) {
        Some(RunCause::Schedule)
    } else if job.run_now {
        Some(RunCause::Manual)
    } else {
        None
    }
}

/// A worker claims the job for a run of `cause`; returns the attempt number. The caller
/// stores the run row and sets `current_run_id`/`last_run_id` to it.
pub fn claim(
    job: &mut Job,
    cause: RunCause,
    now: NaiveDateTime,
    worker: &str,
    lease: Duration,
) -> i32 {
    match cause {
        RunCause::Retry => {
            job.attempt += 1;
            job.retry_at = None;
        }
        RunCause::Schedule => {
            job.series = Some(RunCause::Schedule);
            job.attempt = 1;
            job.retry_at = None;
            // This run is the occurrence; a run-now waiting beside it is satisfied too.
            job.run_now = false;
            job.next_run_at = job
                .schedule
                .0
                .next_after(utc(now), utc(job.anchor_at))
                .map(|t| t.naive_utc());
        }
        RunCause::Manual => {
            job.series = Some(RunCause::Manual);
            job.attempt = 1;
            job.retry_at = None;
            job.run_now = false;
        }
    }
    job.outcome = None;
    job.cancel_requested = false;
    job.progress = None;
    job.locked_by = Some(worker.to_string());
    job.lease_until = Some(now + lease);
    job.attempt
}

/// The claimed run ended with `outcome`: retry, or end the series.
pub fn finish(job: &mut Job, outcome: RunOutcome, now: NaiveDateTime, backoff: Backoff) {
    job.current_run_id = None;
    job.locked_by = None;
    job.lease_until = None;
    job.cancel_requested = false;
    match outcome {
        RunOutcome::Succeeded => end_series(job, JobState::Succeeded),
        RunOutcome::Cancelled => end_series(job, JobState::Cancelled),
        RunOutcome::Failed | RunOutcome::TimedOut | RunOutcome::Interrupted
            if job.attempt < job.max_attempts =>
        {
            job.retry_at = Some(now + backoff.after(job.attempt));
        }
        _ => end_series(job, JobState::Failed),
    }
    settle(job, now);
}

/// A failure that no retry can fix (the owner is gone, the payload no longer valid).
pub fn give_up(job: &mut Job, now: NaiveDateTime) {
    job.current_run_id = None;
    job.locked_by = None;
    job.lease_until = None;
    job.cancel_requested = false;
    end_series(job, JobState::Failed);
    settle(job, now);
}

fn end_series(job: &mut Job, end: JobState) {
    job.attempt = 0;
    job.series = None;
    job.retry_at = None;
    job.outcome = (job.schedule.0.is_once() && job.next_run_at.is_none()).then_some(end);
}

/// What a cancel request does to a job that is not running: drops a pending retry or
/// run-now, and a one-off job's pending occurrence. Returns whether anything was pending.
pub fn cancel_pending(job: &mut Job, now: NaiveDateTime) -> bool {
    let mut pending = job.run_now || job.retry_at.is_some();
    job.run_now = false;
    if job.retry_at.is_some() {
        end_series(job, JobState::Cancelled);
    }
    if job.schedule.0.is_once() && job.next_run_at.is_some() {
        job.next_run_at = None;
        job.outcome = Some(JobState::Cancelled);
        pending = true;
    }
    settle(job, now);
    pending
}

/// A new schedule: ticks count from now, a finished one-off job is scheduled again.
pub fn reschedule(job: &mut Job, now: NaiveDateTime) {
    job.anchor_at = now;
    job.next_run_at = job
        .schedule
        .0
        .first_occurrence(utc(now))
        .map(|t| t.naive_utc());
    job.outcome = None;
    settle(job, now);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::json::JsonText;
    use crate::jobs::schedule::Schedule;
    use chrono::NaiveDate;

    fn t(secs: i64) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            + Duration::seconds(secs)
    }

    const BACKOFF: Backoff = Backoff {
        base_secs: 10,
        max_secs: 60,
    };

    fn job(schedule: Schedule, max_attempts: i32) -> Job {
        let mut j = Job {
            id: 1,
            owner_id: 1,
            api_key_id: None,
            name: "j".into(),
            kind: "agent_prompt".into(),
            payload: JsonText(serde_json::json!({})),
            schedule: JsonText(schedule),
            priority: 0,
            max_attempts,
            timeout_secs: 60,
            state: JobState::Scheduled,
            paused: false,
            outcome: None,
            anchor_at: t(0),
            next_run_at: None,
            retry_at: None,
            run_now: false,
            due_at: None,
            attempt: 0,
            series: None,
            cancel_requested: false,
            current_run_id: None,
            last_run_id: None,
            locked_by: None,
            lease_until: None,
            progress: None,
            created_at: t(0),
            updated_at: t(0),
        };
        reschedule(&mut j, t(0));
        j
    }

    /// Claims and pretends the run row got id `run`.
    fn run(j: &mut Job, now: NaiveDateTime, run: i64) -> RunCause {
        let cause = cause_of(j, now).expect("due");
        claim(j, cause, now, "w", Duration::seconds(30));
        j.current_run_id = Some(run);
        j.last_run_id = Some(run);
        settle(j, now);
        cause
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(BACKOFF.after(1), Duration::seconds(10));
        assert_eq!(BACKOFF.after(2), Duration::seconds(20));
        assert_eq!(BACKOFF.after(3), Duration::seconds(40));
        assert_eq!(BACKOFF.after(9), Duration::seconds(60));
    }

    #[test]
    fn a_one_off_job_retries_then_fails() {
        let mut j = job(Schedule::Once { once: utc(t(5)) }, 3);
        assert_eq!(j.due_at, Some(t(5)));
        assert_eq!(cause_of(&j, t(4)), None);
        assert_eq!(run(&mut j, t(5), 1), RunCause::Schedule);
        assert_eq!(j.state, JobState::Running);
        assert_eq!(j.due_at, None);
        finish(&mut j, RunOutcome::Failed, t(6), BACKOFF);
        assert_eq!(j.state, JobState::Scheduled);
        assert_eq!(j.due_at, Some(t(16)));
        assert_eq!(run(&mut j, t(16), 2), RunCause::Retry);
        assert_eq!(j.attempt, 2);
        finish(&mut j, RunOutcome::Interrupted, t(17), BACKOFF);
        assert_eq!(j.due_at, Some(t(37)));
        run(&mut j, t(37), 3);
        finish(&mut j, RunOutcome::TimedOut, t(38), BACKOFF);
        assert_eq!(j.state, JobState::Failed);
        assert_eq!(j.due_at, None);
        // Run-now re-runs a finished job; success becomes its outcome.
        j.run_now = true;
        settle(&mut j, t(50));
        assert_eq!(run(&mut j, t(50), 4), RunCause::Manual);
        finish(&mut j, RunOutcome::Succeeded, t(51), BACKOFF);
        assert_eq!(j.state, JobState::Succeeded);
        assert_eq!(j.attempt, 0);
    }

    #[test]
    fn an_interval_job_runs_once_after_downtime_and_keeps_its_ticks() {
        let mut j = job(Schedule::Every { every_secs: 60 }, 1);
        assert_eq!(j.due_at, Some(t(60)));
        // The server was down from 50 s to 10 min: one run, then the next tick.
        run(&mut j, t(600), 1);
        assert_eq!(j.next_run_at, Some(t(660)));
        finish(&mut j, RunOutcome::Failed, t(601), BACKOFF);
        // Out of attempts: the series ends, the schedule goes on.
        assert_eq!(j.state, JobState::Scheduled);
        assert_eq!(j.due_at, Some(t(660)));
        // Run-now does not move the schedule.
        j.run_now = true;
        settle(&mut j, t(610));
        assert_eq!(run(&mut j, t(610), 2), RunCause::Manual);
        finish(&mut j, RunOutcome::Succeeded, t(611), BACKOFF);
        assert_eq!(j.next_run_at, Some(t(660)));
        assert_eq!(j.due_at, Some(t(660)));
    }

    #[test]
    fn a_paused_job_keeps_its_schedule_but_does_not_run() {
        let mut j = job(Schedule::Every { every_secs: 60 }, 1);
        j.paused = true;
        settle(&mut j, t(1));
        assert_eq!(j.state, JobState::Paused);
        assert_eq!(j.due_at, None);
        assert_eq!(cause_of(&j, t(120)), None);
        assert_eq!(j.next_run_at, Some(t(60)));
        j.run_now = true;
        settle(&mut j, t(130));
        assert_eq!(run(&mut j, t(130), 1), RunCause::Manual);
        finish(&mut j, RunOutcome::Succeeded, t(131), BACKOFF);
        assert_eq!(j.state, JobState::Paused);
        j.paused = false;
        settle(&mut j, t(140));
        assert_eq!(j.due_at, Some(t(60)));
    }

    #[test]
    fn cancelling_a_pending_one_off_job() {
        let mut j = job(Schedule::Once { once: utc(t(100)) }, 1);
        assert!(cancel_pending(&mut j, t(1)));
        assert_eq!(j.state, JobState::Cancelled);
        assert_eq!(j.due_at, None);
        let mut j = job(Schedule::Every { every_secs: 60 }, 1);
        assert!(!cancel_pending(&mut j, t(1)));
        assert_eq!(j.state, JobState::Scheduled);
    }
}
