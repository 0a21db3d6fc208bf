//! Time for the audit commands: `--since`/`--until` as auditors type them,
//! and the log's own timestamps, read without a general parser when they
//! have the exact shape portvakt writes.

use std::str::FromStr;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// `--since` and `--until`, shared by `query` and `report`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PeriodArgs {
    /// Only lines at or after WHEN: an RFC 3339 time (2026-11-23T13:45:00Z),
    /// a date (2026-11-23: from 00:00 UTC), `today`, `yesterday`, or a
    /// duration meaning that long ago (24h, 7d, 2w, "1h 30m").
    #[arg(long, value_name = "WHEN", value_parser = TimeArg::parse_now)]
    pub since: Option<TimeArg>,
    /// Only lines before WHEN (same forms as --since; a date includes that
    /// whole day, so `--since 2026-11-23 --until 2026-11-23` is one day).
    #[arg(long, value_name = "WHEN", value_parser = TimeArg::parse_now)]
    pub until: Option<TimeArg>,
}

impl PeriodArgs {
    /// The half-open interval `[since, until)` in milliseconds, or why the
    /// two bounds make an empty period.
    pub fn period(&self) -> Result<Period, String> {
        let period = Period {
            since: self.since.as_ref().map(TimeArg::as_since),
            until: self.until.as_ref().map(TimeArg::as_until),
        };
        if let (Some(s), Some(u)) = (period.since, period.until) {
            if s >= u {
                return Err(format!(
                    "--since ({}) is not before --until ({}): that period is empty",
                    format_ms(s),
                    format_ms(u)
                ));
            }
        }
        Ok(period)
    }
}

/// A time as given on the command line. A date stays a date until we know
/// whether it starts or ends a period, because the two mean different
/// instants (start of the day, start of the next day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeArg {
    /// An instant, milliseconds since the Unix epoch.
    At(i64),
    /// A whole day in UTC.
    Day(Date),
}

const TIME_FORMS: &str = "use an RFC 3339 time (2026-11-23T13:45:00Z), a date (2026-11-23, UTC), \
today, yesterday, or how long ago (24h, 7d, 2w)";

impl TimeArg {
    /// Parse relative to the current time (the clap value parser).
    pub fn parse_now(s: &str) -> Result<TimeArg, String> {
        TimeArg::parse_at(s, Timestamp::now().as_millisecond())
    }

    /// Parse relative to `now_ms` (so tests can fix "now").
    pub fn parse_at(s: &str, now_ms: i64) -> Result<TimeArg, String> {
        let s = s.trim();
        let bad = || format!("`{s}` is not a time: {TIME_FORMS}");
        if s.is_empty() {
            return Err(bad());
        }
        let today = || {
            Timestamp::from_millisecond(now_ms)
                .map(|t| t.to_zoned(TimeZone::UTC).date())
                .map_err(|_| bad())
        };
        match s {
            "now" => return Ok(TimeArg::At(now_ms)),
            "today" => return today().map(TimeArg::Day),
            "yesterday" => return today()?.yesterday().map(TimeArg::Day).map_err(|_| bad()),
            _ => {}
        }
        if let Ok(t) = Timestamp::from_str(s) {
            return Ok(TimeArg::At(t.as_millisecond()));
        }
        // A bare date is ten characters; DateTime would also accept it (as
        // midnight) and lose the "whole day" meaning for --until.
        if s.len() == 10 {
            if let Ok(d) = Date::from_str(s) {
                return Ok(TimeArg::Day(d));
            }
        }
        if let Ok(dt) = DateTime::from_str(s) {
            // The logs are in UTC, so a time without an offset is read as UTC
            // rather than in the auditor's local zone.
            return dt
                .to_zoned(TimeZone::UTC)
                .map(|z| TimeArg::At(z.timestamp().as_millisecond()))
                .map_err(|_| bad());
        }
        let ago = s.strip_suffix("ago").unwrap_or(s).trim_end();
        if ago.starts_with(|c: char| c.is_ascii_digit()) {
            if let Ok(d) = humantime::parse_duration(ago) {
                let ms = i64::try_from(d.as_millis()).map_err(|_| bad())?;
                return Ok(TimeArg::At(now_ms.saturating_sub(ms)));
            }
        }
        Err(bad())
    }

    /// As the start of a period: a date starts at 00:00 UTC.
    pub fn as_since(&self) -> i64 {
        match self {
            TimeArg::At(ms) => *ms,
            TimeArg::Day(d) => day_start(*d),
        }
    }

    /// As the (exclusive) end of a period: a date ends where the next day starts.
    pub fn as_until(&self) -> i64 {
        match self {
            TimeArg::At(ms) => *ms,
            TimeArg::Day(d) => d.tomorrow().map(day_start).unwrap_or(i64::MAX),
        }
    }
}

fn day_start(d: Date) -> i64 {
    d.to_zoned(TimeZone::UTC)
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or(i64::MIN)
}

/// A half-open interval of log time, each end optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Period {
    /// Inclusive start, ms since the epoch.
    pub since: Option<i64>,
    /// Exclusive end, ms since the epoch.
    pub until: Option<i64>,
}

impl Period {
    /// Whether a line at `ms` is inside.
    pub fn contains(&self, ms: i64) -> bool {
        self.since.is_none_or(|s| ms >= s) && self.until.is_none_or(|u| ms < u)
    }

    /// No bound at all: every line is inside, so nobody needs its time.
    pub fn is_all(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }
}

/// RFC 3339 UTC with milliseconds, the way the logs write it.
pub fn format_ms(ms: i64) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(t) => format!("{t:.3}"),
        Err(_) => ms.to_string(),
    }
}

/// A log timestamp in ms. The writer always produces
/// `YYYY-MM-DDTHH:MM:SS.mmmZ`; reading that by hand is several times cheaper
/// than a general RFC 3339 parser, which stays as the fallback for anything
/// else a log might hold (other offsets, other precisions).
pub fn time_ms(s: &str) -> Option<i64> {
    fast_time_ms(s.as_bytes()).or_else(|| Timestamp::from_str(s).ok().map(|t| t.as_millisecond()))
}

/// The time of a raw line without parsing its JSON, if its `time` has the
/// written shape: the access log puts it first (`{"time":"…Z",`), the auth
/// log (canonical JSON for its hash chain) sorts keys, so it sits near the
/// end. `None` means "ask the parser".
///
/// A key is recognised only after `{` or `,`: values are escaped, so a user
/// name or path cannot fake it. (A nested object's `time` could, but
/// neither log has nested objects; the parsed time decides in the end.)
pub fn line_time_ms(line: &[u8]) -> Option<i64> {
    const KEY: &str = "\"time\":\"";
    let at = if line.starts_with(b"{\"time\":\"") {
        1
    } else {
        let text = std::str::from_utf8(line).ok()?;
        let i = text.find(KEY)?;
        if i == 0 || !matches!(line[i - 1], b',' | b'{') {
            return None;
        }
        i
    };
    let start = at + KEY.len();
    let value = line.get(start..start + 24)?;
    if line.get(start + 24) != Some(&b'"') {
        return None;
    }
    fast_time_ms(value)
}

/// Exactly `YYYY-MM-DDTHH:MM:SS.mmmZ`, validated (a wrong day of the month
/// is rejected here rather than silently rolled into the next month).
fn fast_time_ms(b: &[u8]) -> Option<i64> {
    if b.len() != 24
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[23] != b'Z'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let mut n = 0i64;
        for &c in &b[from..to] {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + i64::from(c - b'0');
        }
        Some(n)
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, s, ms) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some(((days * 24 + h) * 60 + mi) * 60_000 + s * 1000 + ms)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 in the proleptic Gregorian calendar (Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        Timestamp::from_str(s).unwrap().as_millisecond()
    }

    const NOW: &str = "2026-11-23T13:45:00.123Z";

    #[test]
    fn the_fast_reader_agrees_with_jiff_on_the_written_format() {
        for s in [
            "1970-01-01T00:00:00.000Z",
            "2026-11-23T13:45:00.123Z",
            "2024-02-29T23:59:59.999Z",
            "2000-03-01T00:00:00.001Z",
            "2100-12-31T12:00:00.500Z",
        ] {
            assert_eq!(fast_time_ms(s.as_bytes()), Some(ms(s)), "{s}");
        }
    }

    #[test]
    fn the_fast_reader_refuses_what_is_not_a_real_time() {
        for s in [
            "2026-02-29T00:00:00.000Z",
            "2026-13-01T00:00:00.000Z",
            "2026-11-23T24:00:00.000Z",
            "2026-11-23T13:45:00.123+01:00",
            "2026-11-23 13:45:00.123Z",
            "2026-11-2xT13:45:00.123Z",
        ] {
            assert_eq!(fast_time_ms(s.as_bytes()), None, "{s}");
        }
    }

    #[test]
    fn other_offsets_and_precisions_fall_back_to_the_full_parser() {
        assert_eq!(
            time_ms("2026-11-23T14:45:00.123+01:00"),
            Some(ms("2026-11-23T13:45:00.123Z"))
        );
        assert_eq!(time_ms("2026-11-23T13:45:00Z"), Some(ms(NOW) - 123));
        assert_eq!(time_ms("yesterday"), None);
    }

    #[test]
    fn a_line_time_is_read_without_parsing_only_when_it_is_the_written_shape() {
        let line = br#"{"time":"2026-11-23T13:45:00.123Z","request_id":"x"}"#;
        assert_eq!(line_time_ms(line), Some(ms(NOW)));
        let sorted =
            br#"{"event":"login","hash":"ab","time":"2026-11-23T13:45:00.123Z","user":"x"}"#;
        assert_eq!(line_time_ms(sorted), Some(ms(NOW)));
        let faked = br#"{"event":"login","user":"\"time\":\"2020-01-01T00:00:00.000Z\""}"#;
        assert_eq!(line_time_ms(faked), None);
        let escaped_key = br#"{"x\"time":"2020-01-01T00:00:00.000Z"}"#;
        assert_eq!(line_time_ms(escaped_key), None);
        assert_eq!(line_time_ms(br#"{"time":"2026-11-23T13:45:00Z"}"#), None);
        assert_eq!(line_time_ms(b"{\"time\":\""), None);
    }

    #[test]
    fn auditors_type_times_dates_and_durations() {
        let now = ms(NOW);
        let at = |s: &str| TimeArg::parse_at(s, now).unwrap();
        assert_eq!(
            at("2026-11-20T08:00:00Z"),
            TimeArg::At(ms("2026-11-20T08:00:00Z"))
        );
        assert_eq!(
            at("2026-11-20T09:00:00+01:00"),
            TimeArg::At(ms("2026-11-20T08:00:00Z"))
        );
        assert_eq!(
            at("2026-11-20T08:00"),
            TimeArg::At(ms("2026-11-20T08:00:00Z"))
        );
        assert_eq!(
            at("2026-11-20 08:00:00"),
            TimeArg::At(ms("2026-11-20T08:00:00Z"))
        );
        assert_eq!(at("24h"), TimeArg::At(now - 86_400_000));
        assert_eq!(at("7d"), TimeArg::At(now - 7 * 86_400_000));
        assert_eq!(at("1h 30m ago"), TimeArg::At(now - 90 * 60_000));
        assert_eq!(at("now"), TimeArg::At(now));
        assert_eq!(
            at("2026-11-20"),
            TimeArg::Day(jiff::civil::date(2026, 11, 20))
        );
        assert_eq!(at("today"), TimeArg::Day(jiff::civil::date(2026, 11, 23)));
        assert_eq!(
            at("yesterday"),
            TimeArg::Day(jiff::civil::date(2026, 11, 22))
        );
    }

    #[test]
    fn a_date_starts_at_midnight_and_as_an_end_includes_the_whole_day() {
        let day = TimeArg::Day(jiff::civil::date(2026, 11, 23));
        assert_eq!(day.as_since(), ms("2026-11-23T00:00:00Z"));
        assert_eq!(day.as_until(), ms("2026-11-24T00:00:00Z"));
        let p = Period {
            since: Some(day.as_since()),
            until: Some(day.as_until()),
        };
        assert!(p.contains(ms("2026-11-23T00:00:00Z")));
        assert!(p.contains(ms("2026-11-23T23:59:59.999Z")));
        assert!(!p.contains(ms("2026-11-24T00:00:00Z")));
        assert!(!p.contains(ms("2026-11-22T23:59:59.999Z")));
    }

    #[test]
    fn nonsense_is_refused_with_the_forms_that_work() {
        for s in ["", "last week", "2026-11-31", "h24", "-5h", "13:45"] {
            let e = TimeArg::parse_at(s, 0).unwrap_err();
            assert!(e.contains("RFC 3339") && e.contains("7d"), "{s}: {e}");
        }
    }

    #[test]
    fn an_empty_period_is_an_error() {
        let args = PeriodArgs {
            since: Some(TimeArg::Day(jiff::civil::date(2026, 11, 23))),
            until: Some(TimeArg::At(ms("2026-11-22T12:00:00Z"))),
        };
        let e = args.period().unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let ok = PeriodArgs {
            since: Some(TimeArg::Day(jiff::civil::date(2026, 11, 23))),
            until: Some(TimeArg::Day(jiff::civil::date(2026, 11, 23))),
        };
        assert_eq!(
            ok.period().unwrap(),
            Period {
                since: Some(ms("2026-11-23T00:00:00Z")),
                until: Some(ms("2026-11-24T00:00:00Z")),
            }
        );
    }
}
