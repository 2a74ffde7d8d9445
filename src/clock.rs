//! Where "now" comes from: the [`Clock`] trait, the system clock and a manual clock for tests.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time, as seconds since the Unix epoch.
///
/// Validation reads the time through this trait, so tests and replays can check tokens "as of"
/// any instant. Closures `Fn() -> i64` implement it.
///
/// ```
/// use tower_token_auth::{AuthConfig, Keys};
///
/// let cfg = AuthConfig::builder()
///     .keys(Keys::hmac(b"0123456789abcdef0123456789abcdef"))
///     .issuer("https://issuer.example")
///     .audience("api")
///     .clock(|| 1_700_000_000) // every token is checked as of 2023-11-14T22:13:20Z
///     .build()
///     .unwrap();
/// ```
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
}

impl<F> Clock for F
where
    F: Fn() -> i64 + Send + Sync + 'static,
{
    fn now(&self) -> i64 {
        self()
    }
}

/// The system clock (the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        }
    }
}

/// A clock that stands still until told to move; clones share the same time.
///
/// ```
/// use tower_token_auth::clock::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::at(1_700_000_000);
/// let handle = clock.clone();
/// handle.advance(Duration::from_secs(90));
/// assert_eq!(clock.now(), 1_700_000_090);
/// ```
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock showing `unix_seconds`.
    pub fn at(unix_seconds: i64) -> Self {
        ManualClock {
            now: Arc::new(AtomicI64::new(unix_seconds)),
        }
    }

    /// Sets the time.
    pub fn set(&self, unix_seconds: i64) {
        self.now.store(unix_seconds, Ordering::SeqCst);
    }

    /// Moves the time forward.
    pub fn advance(&self, by: Duration) {
        let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        self.now.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish()
    }
}

/// Default leeway for `exp` and `nbf`: 30 seconds.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The largest leeway accepted at `build()`: 5 minutes.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// The NumericDates accepted: years 1 to 9999. Anything outside is a claim error, not a date
/// (`exp: 1e300` must not mean "never expires").
const DATE_RANGE: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

/// A NumericDate (RFC 7519 §2): a JSON number, possibly with a fraction, within the years 1 to
/// 9999.
pub(crate) fn numeric_date(v: &serde_json::Value) -> Option<i64> {
    let n = v.as_number()?;
    let secs = match n.as_i64() {
        Some(i) => i,
        None => {
            let f = n.as_f64()?.floor();
            // Checked against the range before the cast, so the cast never saturates.
            if !(f >= *DATE_RANGE.start() as f64 && f <= *DATE_RANGE.end() as f64) {
                return None;
            }
            f as i64
        }
    };
    DATE_RANGE.contains(&secs).then_some(secs)
}
