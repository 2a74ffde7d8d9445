//! Durations and instants for people: `5 min 12 s`, `2023-11-14 22:08:08 UTC`.

/// A duration in its two largest units: `45 s`, `5 min 12 s`, `3 h 2 min`, `2 d 4 h`.
pub(super) fn human(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let (big, small, bu, su) = if s < 60 {
        return format!("{s} s");
    } else if s < 3600 {
        (s / 60, s % 60, "min", "s")
    } else if s < 86_400 {
        (s / 3600, s % 3600 / 60, "h", "min")
    } else {
        (s / 86_400, s % 86_400 / 3600, "d", "h")
    };
    if small == 0 {
        format!("{big} {bu}")
    } else {
        format!("{big} {bu} {small} {su}")
    }
}

pub(super) fn relative(t: i64, now: i64) -> String {
    match now - t {
        0 => "now".to_owned(),
        d if d > 0 => format!("{} ago", human(d)),
        d => format!("in {}", human(-d)),
    }
}

/// Year, month, day of a count of days since 1970-01-01 (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub(super) fn utc(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_their_two_largest_units() {
        assert_eq!(human(0), "0 s");
        assert_eq!(human(45), "45 s");
        assert_eq!(human(60), "1 min");
        assert_eq!(human(312), "5 min 12 s");
        assert_eq!(human(3 * 3600 + 2 * 60 + 9), "3 h 2 min");
        assert_eq!(human(7200), "2 h");
        assert_eq!(human(2 * 86_400 + 4 * 3600 + 59), "2 d 4 h");
        assert_eq!(human(-312), "5 min 12 s");
    }

    #[test]
    fn instants_are_utc_calendar_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(utc(253_402_300_799), "9999-12-31 23:59:59 UTC");
        assert_eq!(utc(-62_135_596_800), "0001-01-01 00:00:00 UTC");
    }
}
