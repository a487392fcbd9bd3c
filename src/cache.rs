//! Caches of values computed from database reads, valid while the data generation they were
//! computed at is current (any write moves it on) and for at most a short TTL (for values that
//! also depend on the clock, such as expiries). Only used when the process sees every write
//! (`Db::generation` is `Some`: SQLite).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A bounded map of values tagged with the generation they were computed at.
pub struct GenerationCache<K, V> {
    entries: Mutex<HashMap<K, (u64, Instant, V)>>,
    /// Answers served from the cache, for metrics and the tests that prove it is used.
    hits: std::sync::atomic::AtomicU64,
    ttl: Duration,
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> GenerationCache<K, V> {
    /// A cache of at most `capacity` entries, each valid for at most `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            hits: Default::default(),
            ttl,
            capacity,
        }
    }

    /// The value for `key` if it was computed at `generation` and is younger than the TTL.
    pub fn get<Q>(&self, key: &Q, generation: u64) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(key) {
            Some((g, at, v)) if *g == generation && at.elapsed() < self.ttl => {
                self.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Some(v.clone())
            }
            _ => None,
        }
    }

    /// How many lookups found a current value.
    pub fn hits(&self) -> u64 {
        self.hits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stores a value computed from reads made at `generation`.
    pub fn put(&self, key: K, generation: u64, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            // Everything older than the newest generation is dead weight; if that frees
            // nothing, start over rather than track recency.
            entries.retain(|_, (g, _, _)| *g == generation);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (generation, Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_and_ttl_invalidate() {
        let c = GenerationCache::new(2, Duration::from_millis(50));
        c.put("a", 1, 10);
        assert_eq!(c.get(&"a", 1), Some(10));
        assert_eq!(c.get(&"a", 2), None);
        c.put("b", 1, 20);
        c.put("c", 2, 30);
        assert_eq!(
            c.get(&"a", 1),
            None,
            "over capacity, stale generations are dropped"
        );
        assert_eq!(c.get(&"c", 2), Some(30));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get(&"c", 2), None);
    }
}
