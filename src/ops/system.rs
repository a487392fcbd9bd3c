//! System and process figures (CPU, memory) through `sysinfo`. CPU use is a rate, so it is
//! known from the second reading on; the sampler task reads every few seconds and doors
//! answer the latest reading.

use serde::Serialize;
use std::sync::Mutex;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// One reading.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Figures {
    /// CPU in use on the whole machine, percent of all its CPUs.
    pub cpu: f64,
    /// Memory in use on the whole machine, percent.
    pub memory: f64,
    /// This process's CPU use, percent of one CPU (above 100 on several).
    pub process_cpu: f64,
    /// This process's resident memory, bytes.
    pub process_memory: u64,
    /// The machine's memory, bytes.
    pub total_memory: u64,
    /// CPUs of the machine.
    pub cpus: usize,
}

struct Inner {
    sys: System,
    pid: Option<Pid>,
    last: Figures,
}

/// Reads the figures and keeps the latest.
pub struct Sampler {
    inner: Mutex<Inner>,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler {
    /// A sampler that has read nothing yet.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                sys: System::new(),
                pid: sysinfo::get_current_pid().ok(),
                last: Figures::default(),
            }),
        }
    }

    /// Reads the figures now (a few reads of `/proc`: call it off the async runtime).
    pub fn refresh(&self) -> Figures {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Inner { sys, pid, last } = &mut *inner;
        sys.refresh_cpu_usage();
        sys.refresh_memory();
        let (mut process_cpu, mut process_memory) = (0.0, 0);
        if let Some(pid) = *pid {
            sys.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                true,
                ProcessRefreshKind::nothing().with_cpu().with_memory(),
            );
            if let Some(p) = sys.process(pid) {
                process_cpu = p.cpu_usage() as f64;
                process_memory = p.memory();
            }
        }
        let total = sys.total_memory();
        *last = Figures {
            cpu: round1(sys.global_cpu_usage() as f64),
            memory: if total == 0 {
                0.0
            } else {
                round1(sys.used_memory() as f64 * 100.0 / total as f64)
            },
            process_cpu: round1(process_cpu),
            process_memory,
            total_memory: total,
            cpus: sys.cpus().len(),
        };
        *last
    }

    /// The latest reading.
    pub fn latest(&self) -> Figures {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).last
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
