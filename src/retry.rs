//! Exponential backoff with jitter, behind one small type so the `backoff`
//! crate (unmaintained per RUSTSEC-2025-0012) can be swapped in one place.

use backoff::backoff::Backoff as _;
use std::time::Duration;

/// Delays that grow from `min` to `max` with ±30 % jitter, forever.
#[derive(Debug)]
pub struct Backoff {
    inner: backoff::ExponentialBackoff,
    min: Duration,
    max: Duration,
}

/// `min` was larger than `max`.
#[derive(Debug, thiserror::Error)]
#[error("backoff minimum {min:?} is larger than its maximum {max:?}")]
pub struct BackoffError {
    min: Duration,
    max: Duration,
}

impl Backoff {
    /// Checked constructor: rejects `min > max` or a zero `min`.
    pub fn try_new(min: Duration, max: Duration) -> Result<Self, BackoffError> {
        if min > max || min.is_zero() {
            return Err(BackoffError { min, max });
        }
        let inner = backoff::ExponentialBackoff {
            current_interval: min,
            initial_interval: min,
            randomization_factor: 0.3,
            multiplier: 2.0,
            max_interval: max,
            max_elapsed_time: None,
            ..Default::default()
        };
        Ok(Backoff { inner, min, max })
    }

    /// A backoff from `min` to `max`, clamping `min` to `max` instead of
    /// failing (for values validation already bounded).
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        let max = max.max(min);
        match Self::try_new(min, max) {
            Ok(b) => b,
            Err(_) => Backoff { inner: backoff::ExponentialBackoff::default(), min, max },
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        self.inner.next_backoff().unwrap_or(self.max).min(self.max.mul_f64(1.3)).max(self.min.mul_f64(0.5))
    }

    /// Start again from the minimum after a success.
    pub fn reset(&mut self) {
        self.inner.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_max_and_resets() {
        assert!(Backoff::try_new(Duration::from_secs(2), Duration::from_secs(1)).is_err());
        let mut b = Backoff::try_new(Duration::from_millis(100), Duration::from_secs(1)).unwrap();
        let first = b.next_delay();
        assert!(first <= Duration::from_millis(130), "{first:?}");
        let mut last = first;
        for _ in 0..20 {
            last = b.next_delay();
        }
        assert!(last <= Duration::from_millis(1300) && last >= Duration::from_millis(700), "{last:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(130));
    }
}
