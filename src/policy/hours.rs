//! Opening hours: some services are "closed at certain times for security
//! reasons" (seed). Windows per weekday in an IANA time zone, optional
//! holidays, and when a closed service opens next. Pure functions of a
//! timestamp, so tests can step across DST changes without a clock.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// One opening window on some weekdays, `from` inclusive, `to` exclusive,
/// in minutes after midnight. `to <= from` runs past midnight into the next day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Monday = index 0.
    pub days: [bool; 7],
    /// Opening minute of the day.
    pub from: u16,
    /// Closing minute of the day.
    pub to: u16,
}

/// A service's opening hours.
#[derive(Debug, Clone)]
pub struct Hours {
    /// The zone the windows are written in.
    pub zone: TimeZone,
    /// Open when any window is open.
    pub windows: Vec<Window>,
    /// Days closed all day, whatever the windows say.
    pub holidays: Vec<Date>,
}

fn day_index(w: Weekday) -> usize {
    w.to_monday_zero_offset() as usize
}

/// Parse `mon-fri`, `sat,sun`, `mon,wed-fri`, `daily`.
pub fn parse_days(text: &str) -> Result<[bool; 7], String> {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let idx = |s: &str| {
        NAMES
            .iter()
            .position(|n| *n == s.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("{s:?} is not a day; use mon, tue, wed, thu, fri, sat, sun"))
    };
    let mut days = [false; 7];
    if matches!(text.trim(), "daily" | "all" | "mon-sun") {
        return Ok([true; 7]);
    }
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (idx(a)?, idx(b)?);
                // mon-fri, or a range that wraps: fri-mon.
                let mut i = a;
                loop {
                    days[i] = true;
                    if i == b {
                        break;
                    }
                    i = (i + 1) % 7;
                }
            }
            None => days[idx(part)?] = true,
        }
    }
    Ok(days)
}

/// Parse `HH:MM` (24:00 allowed as the end of the day).
pub fn parse_time(text: &str) -> Result<u16, String> {
    let bad = || format!("{text:?} is not a time; write HH:MM, e.g. 06:00 or 20:30");
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl Window {
    /// Whether the window is open at minute `t` of a day that is weekday `d`
    /// (index), given whether the window was scheduled the day before.
    fn open(&self, d: usize, t: u16) -> bool {
        let yesterday = (d + 6) % 7;
        if self.from < self.to {
            self.days[d] && t >= self.from && t < self.to
        } else {
            (self.days[d] && t >= self.from) || (self.days[yesterday] && t < self.to)
        }
    }
}

impl Hours {
    /// Whether the service is open at `ts`.
    pub fn is_open(&self, ts: Timestamp) -> bool {
        let z = ts.to_zoned(self.zone.clone());
        self.open_local(&z)
    }

    fn open_local(&self, z: &Zoned) -> bool {
        if self.holidays.contains(&z.date()) {
            return false;
        }
        let d = day_index(z.weekday());
        let t = (z.hour() as u16) * 60 + z.minute() as u16;
        self.windows.iter().any(|w| w.open(d, t))
    }

    /// When the service next opens after `ts` (within two weeks), in its zone.
    pub fn next_open(&self, ts: Timestamp) -> Option<Zoned> {
        let now = ts.to_zoned(self.zone.clone());
        let mut best: Option<Zoned> = None;
        for offset in 0..15i64 {
            let date = now
                .date()
                .checked_add(jiff::Span::new().days(offset))
                .ok()?;
            for w in &self.windows {
                let (h, m) = ((w.from / 60) as i8, (w.from % 60) as i8);
                let Ok(time) = Time::new(h.min(23), m, 0, 0) else {
                    continue;
                };
                // A start inside a DST gap moves to the first valid instant.
                let Ok(start) = date.to_datetime(time).to_zoned(self.zone.clone()) else {
                    continue;
                };
                if start.timestamp() > ts
                    && self.open_local(&start)
                    && best.as_ref().is_none_or(|b| start < *b)
                {
                    best = Some(start);
                }
            }
            if best.is_some() {
                break;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(windows: Vec<Window>, holidays: &[&str]) -> Hours {
        Hours {
            zone: TimeZone::get("Europe/Stockholm").unwrap(),
            windows,
            holidays: holidays.iter().map(|d| d.parse().unwrap()).collect(),
        }
    }

    fn at(s: &str) -> Timestamp {
        // Local Stockholm time, written without offset.
        let dt: jiff::civil::DateTime = s.parse().unwrap();
        dt.to_zoned(TimeZone::get("Europe/Stockholm").unwrap())
            .unwrap()
            .timestamp()
    }

    fn office() -> Window {
        Window {
            days: parse_days("mon-fri").unwrap(),
            from: parse_time("06:00").unwrap(),
            to: parse_time("20:00").unwrap(),
        }
    }

    #[test]
    fn days_and_times_parse() {
        assert_eq!(
            parse_days("mon-fri").unwrap(),
            [true, true, true, true, true, false, false]
        );
        assert_eq!(
            parse_days("sat,sun").unwrap(),
            [false, false, false, false, false, true, true]
        );
        assert_eq!(
            parse_days("fri-mon").unwrap(),
            [true, false, false, false, true, true, true]
        );
        assert!(parse_days("funday").is_err());
        assert_eq!(parse_time("20:30").unwrap(), 1230);
        assert_eq!(parse_time("24:00").unwrap(), 1440);
        assert!(
            parse_time("25:00").is_err()
                && parse_time("8").is_err()
                && parse_time("08:60").is_err()
        );
    }

    #[test]
    fn weekday_window_edges() {
        let h = hours(vec![office()], &[]);
        // 2026-11-23 is a Monday.
        assert!(!h.is_open(at("2026-11-23T05:59")));
        assert!(h.is_open(at("2026-11-23T06:00")));
        assert!(h.is_open(at("2026-11-23T19:59")));
        assert!(!h.is_open(at("2026-11-23T20:00")));
        assert!(!h.is_open(at("2026-11-28T12:00")), "Saturday");
        let next = h.next_open(at("2026-11-27T21:00")).unwrap();
        assert_eq!(
            next.to_string(),
            "2026-11-30T06:00:00+01:00[Europe/Stockholm]"
        );
    }

    #[test]
    fn several_windows_and_holidays() {
        let sat = Window {
            days: parse_days("sat").unwrap(),
            from: 9 * 60,
            to: 13 * 60,
        };
        let h = hours(vec![office(), sat], &["2026-12-24"]);
        assert!(h.is_open(at("2026-11-28T10:00")));
        assert!(!h.is_open(at("2026-12-24T10:00")), "holiday");
        let next = h.next_open(at("2026-12-24T10:00")).unwrap();
        assert_eq!(next.date().to_string(), "2026-12-25");
    }

    #[test]
    fn overnight_window() {
        let night = Window {
            days: parse_days("fri").unwrap(),
            from: 22 * 60,
            to: 2 * 60,
        };
        let h = hours(vec![night], &[]);
        assert!(h.is_open(at("2026-11-27T23:00")));
        assert!(
            h.is_open(at("2026-11-28T01:59")),
            "Saturday early morning belongs to Friday night"
        );
        assert!(!h.is_open(at("2026-11-28T02:00")));
        assert!(!h.is_open(at("2026-11-28T23:00")));
    }

    #[test]
    fn daylight_saving_changes_keep_local_hours() {
        // Spring forward: Sunday 2026-03-29 02:00 → 03:00 in Stockholm.
        let early = Window {
            days: [true; 7],
            from: 2 * 60 + 30,
            to: 4 * 60,
        };
        let h = hours(vec![early, office()], &[]);
        let before = Timestamp::from_second(at("2026-03-29T01:59").as_second()).unwrap();
        // 02:30 does not exist that day: the window opens at the first instant after the gap.
        let next = h.next_open(before).unwrap();
        assert_eq!(
            next.to_string(),
            "2026-03-29T03:30:00+02:00[Europe/Stockholm]"
        );
        assert!(
            h.is_open(at("2026-03-29T03:15")),
            "03:15 local is inside 02:30-04:00"
        );
        // Fall back: Sunday 2026-10-25 03:00 → 02:00. 02:45 happens twice; both are open.
        let first = "2026-10-25T00:45:00Z".parse::<Timestamp>().unwrap(); // 02:45 CEST
        let second = "2026-10-25T01:45:00Z".parse::<Timestamp>().unwrap(); // 02:45 CET
        assert!(h.is_open(first) && h.is_open(second));
        // Office hours on the Monday after each change are 06:00 local, whatever UTC says.
        assert!(
            !h.is_open("2026-03-30T03:59:00Z".parse().unwrap()),
            "05:59 CEST"
        );
        assert!(
            h.is_open("2026-03-30T04:00:00Z".parse().unwrap()),
            "06:00 CEST"
        );
        assert!(
            !h.is_open("2026-10-26T04:59:00Z".parse().unwrap()),
            "05:59 CET"
        );
        assert!(
            h.is_open("2026-10-26T05:00:00Z".parse().unwrap()),
            "06:00 CET"
        );
    }
}
