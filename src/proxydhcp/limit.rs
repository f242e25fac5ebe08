//! How many answers the proxy sends: a flood of DISCOVERs (a broken client,
//! or someone's test) must not turn into a flood of offers, nor grow the
//! proxy's memory.
//!
//! One-second windows: in each, at most [`PER_CLIENT`] answers to one MAC
//! and [`TOTAL`] in all. Only clients that were answered are remembered, so
//! the table never holds more than `TOTAL` entries, and it is emptied when
//! the window turns. A PXE client retries its DISCOVER after 4 s and more
//! (PXE 2.1: 4, 8, 16, 32 s; iPXE from 1 s), far below either bound.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Answers to one client per window.
pub const PER_CLIENT: u32 = 4;
/// Answers in all per window.
pub const TOTAL: u32 = 64;
const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Limiter {
    window: Instant,
    total: u32,
    per_client: HashMap<[u8; 6], u32>,
    /// Requests refused since the proxy started.
    pub refused: u64,
}

impl Limiter {
    pub fn new(now: Instant) -> Limiter {
        Limiter { window: now, total: 0, per_client: HashMap::new(), refused: 0 }
    }

    /// Whether `mac` may have an answer at `now`; counts it if so.
    pub fn allow(&mut self, mac: [u8; 6], now: Instant) -> bool {
        if now.duration_since(self.window) >= WINDOW {
            self.window = now;
            self.total = 0;
            self.per_client.clear();
        }
        let mine = self.per_client.get(&mac).copied().unwrap_or(0);
        if self.total >= TOTAL || mine >= PER_CLIENT {
            self.refused += 1;
            return false;
        }
        self.total += 1;
        self.per_client.insert(mac, mine + 1);
        true
    }

    /// Clients remembered now (at most [`TOTAL`]).
    #[cfg(test)]
    pub fn clients(&self) -> usize {
        self.per_client.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_flooding_gets_a_few_answers_a_second() {
        let t0 = Instant::now();
        let mut l = Limiter::new(t0);
        let answered = (0..10_000).filter(|_| l.allow([2, 0, 0, 0, 0, 1], t0)).count();
        assert_eq!(answered as u32, PER_CLIENT);
        assert_eq!(l.refused, 10_000 - u64::from(PER_CLIENT));
        assert!(l.allow([2, 0, 0, 0, 0, 1], t0 + WINDOW), "a new window");
    }

    #[test]
    fn a_flood_from_a_million_macs_is_bounded_in_answers_and_memory() {
        let t0 = Instant::now();
        let mut l = Limiter::new(t0);
        let mut answered = 0u32;
        for i in 0u32..1_000_000 {
            let b = i.to_be_bytes();
            // 100 000 requests a second for ten seconds.
            let now = t0 + Duration::from_micros(u64::from(i) * 10);
            if l.allow([2, 0, b[0], b[1], b[2], b[3]], now) {
                answered += 1;
            }
            assert!(l.clients() <= TOTAL as usize);
        }
        assert_eq!(answered, TOTAL * 10, "TOTAL per second, for ten seconds");
    }
}
