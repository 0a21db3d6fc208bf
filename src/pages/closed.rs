//! The branded "closed now, opens at …" page for services with opening
//! hours, and the wording of an opening time in Swedish and English.

use jiff::Zoned;

use super::Reply;
use crate::config::model::Service;
use crate::config::types::Lang;
use crate::gateway::Runtime;

const SV_DAYS: [&str; 7] = [
    "måndag", "tisdag", "onsdag", "torsdag", "fredag", "lördag", "söndag",
];
const EN_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const SV_MONTHS: [&str; 12] = [
    "januari",
    "februari",
    "mars",
    "april",
    "maj",
    "juni",
    "juli",
    "augusti",
    "september",
    "oktober",
    "november",
    "december",
];
const EN_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// "måndag 30 november kl. 06:00" / "Monday 30 November at 06:00".
pub fn when(z: &Zoned, lang: Lang) -> String {
    let d = z.weekday().to_monday_zero_offset() as usize;
    let m = (z.month() as usize).saturating_sub(1).min(11);
    match lang {
        Lang::Sv => format!(
            "{} {} {} kl. {:02}:{:02}",
            SV_DAYS[d],
            z.day(),
            SV_MONTHS[m],
            z.hour(),
            z.minute()
        ),
        Lang::En => format!(
            "{} {} {} at {:02}:{:02}",
            EN_DAYS[d],
            z.day(),
            EN_MONTHS[m],
            z.hour(),
            z.minute()
        ),
    }
}

/// When `service` opens next after `now`, in words, if it has hours and
/// opens within two weeks.
pub fn opens(service: &Service, lang: Lang, now: jiff::Timestamp) -> Option<String> {
    let next = service.hours.as_ref()?.next_open(now)?;
    Some(when(&next, lang))
}

/// The page for a closed service, saying when it opens after `now`.
pub fn page(
    rt: &Runtime,
    lang: Lang,
    request_id: &str,
    service: &Service,
    now: jiff::Timestamp,
) -> Reply {
    let p = &rt.pages;
    let text = match opens(service, lang, now) {
        Some(w) => p.t(lang, "closed_text").replace("{opens}", &w),
        None => p.t(lang, "closed_text_unknown").to_owned(),
    };
    let ctx = minijinja::context! {
        status => 503,
        heading => p.t(lang, "closed_heading").replace("{service}", &service.name),
        text => text,
    };
    Reply::html(503, p.render("message.html", lang, request_id, ctx))
        .header(http::header::RETRY_AFTER, "300")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lönebesked: weekdays 06:00–20:00 in Stockholm.
    fn payslips() -> Service {
        use crate::policy::hours::{parse_days, parse_time, Hours, Window};
        let mut s = crate::testutil::service_at("lon.test", "/", crate::policy::Policy::OneFactor);
        s.hours = Some(Hours {
            zone: jiff::tz::TimeZone::get("Europe/Stockholm").unwrap(),
            windows: vec![Window {
                days: parse_days("mon-fri").unwrap(),
                from: parse_time("06:00").unwrap(),
                to: parse_time("20:00").unwrap(),
            }],
            holidays: vec![],
        });
        s
    }

    #[test]
    fn the_next_opening_is_counted_from_the_clock_it_is_given() {
        use crate::clock::{Clock, ManualClock};
        // Friday 4 December 2026, 20:30 in Stockholm.
        let clock = ManualClock::starting_at_timestamp("2026-12-04T19:30:00Z".parse().unwrap());
        let s = payslips();
        assert_eq!(
            opens(&s, Lang::Sv, clock.now_timestamp()).as_deref(),
            Some("måndag 7 december kl. 06:00")
        );
        // Three days on the clock: Monday evening, so Tuesday morning.
        clock.advance(std::time::Duration::from_secs(3 * 24 * 3600));
        assert_eq!(
            opens(&s, Lang::En, clock.now_timestamp()).as_deref(),
            Some("Tuesday 8 December at 06:00")
        );
    }

    #[test]
    fn opening_times_read_naturally() {
        let z: Zoned = "2026-11-30T06:00[Europe/Stockholm]".parse().unwrap();
        assert_eq!(when(&z, Lang::Sv), "måndag 30 november kl. 06:00");
        assert_eq!(when(&z, Lang::En), "Monday 30 November at 06:00");
    }
}
