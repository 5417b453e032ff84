//! Timestamps read back from SQLite, which keeps them as text.
//!
//! Diesel tries its eighteen accepted forms one after another with chrono's
//! format-string parser, and the form it writes itself comes second: six
//! timestamps per alert made that a visible part of an alerts page's CPU.
//! The form diesel writes (`%F %T%.f`, as `db::sql::Stamp` does too) is read
//! here directly; anything else goes to diesel as before. PostgreSQL sends
//! timestamps as binary and goes to diesel unchanged.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::pg::Pg;
use diesel::sql_types::{Nullable, Timestamp};
use diesel::sqlite::Sqlite;

/// A timestamp column, for `#[diesel(deserialize_as = DbTime)]`.
#[derive(FromSqlRow)]
pub struct DbTime(NaiveDateTime);

/// A nullable timestamp column, for `#[diesel(deserialize_as = DbTimeOpt)]`.
#[derive(FromSqlRow)]
pub struct DbTimeOpt(Option<NaiveDateTime>);

impl From<DbTime> for NaiveDateTime {
    fn from(t: DbTime) -> Self {
        t.0
    }
}

impl From<DbTimeOpt> for Option<NaiveDateTime> {
    fn from(t: DbTimeOpt) -> Self {
        t.0
    }
}

impl FromSql<Timestamp, Sqlite> for DbTime {
    fn from_sql(mut value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        if let Some(at) = parse_written_form(value.read_text()) {
            return Ok(Self(at));
        }
        <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(Self)
    }
}

impl FromSql<Timestamp, Pg> for DbTime {
    fn from_sql(value: <Pg as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(value).map(Self)
    }
}

impl<DB: Backend> FromSql<Nullable<Timestamp>, DB> for DbTimeOpt
where
    DbTime: FromSql<Timestamp, DB>,
{
    fn from_sql(value: DB::RawValue<'_>) -> deserialize::Result<Self> {
        DbTime::from_sql(value).map(|t| Self(Some(t.0)))
    }

    fn from_nullable_sql(value: Option<DB::RawValue<'_>>) -> deserialize::Result<Self> {
        match value {
            Some(v) => Self::from_sql(v),
            None => Ok(Self(None)),
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS` with an optional `.` and 1 to 9 digits of fraction;
/// `None` for anything else, including dates chrono would refuse.
fn parse_written_form(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let digits = |d: &[u8]| -> Option<u32> {
        d.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            // At most 9 digits: below 10^9, and the exponent below 9.
            digits(fraction)? * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    NaiveDate::from_ymd_opt(
        i32::try_from(digits(&b[0..4])?).ok()?,
        digits(&b[5..7])?,
        digits(&b[8..10])?,
    )?
    .and_hms_nano_opt(
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
        nanos,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrono_reads(text: &str) -> Option<NaiveDateTime> {
        NaiveDateTime::parse_from_str(text, "%F %T%.f").ok()
    }

    #[test]
    fn reads_what_diesel_writes_as_chrono_does() {
        let start = NaiveDate::from_ymd_opt(1999, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 58, 0))
            .unwrap();
        // Steps of a prime number of nanoseconds cover every fraction length.
        for i in 0..2_000i64 {
            let at = start + chrono::Duration::nanoseconds(i * 7_919_000_003);
            let text = at.format("%F %T%.f").to_string();
            assert_eq!(parse_written_form(&text), Some(at), "{text}");
            assert_eq!(parse_written_form(&text), chrono_reads(&text), "{text}");
        }
        for text in [
            "2026-11-26 11:56:01",
            "2026-11-26 11:56:01.4",
            "2026-11-26 11:56:01.485198",
            "2026-11-26 11:56:01.123456789",
            "0001-01-01 00:00:00",
        ] {
            assert!(parse_written_form(text).is_some(), "{text}");
            assert_eq!(parse_written_form(text), chrono_reads(text), "{text}");
        }
    }

    #[test]
    fn leaves_every_other_form_to_diesel() {
        for text in [
            "2026-11-26T11:56:01",
            "2026-11-26 11:56:01Z",
            "2026-11-26 11:56:01+02:00",
            "2026-11-26 11:56",
            "2026-11-26 11:56:01.",
            "2026-11-26 11:56:01.1234567890",
            "2026-02-30 11:56:01",
            "2026-11-26 24:00:00",
            "2026-11-26 11:56:61",
            "2026-1x-26 11:56:01",
            "+026-11-26 11:56:01",
            "2461005.5",
            "",
        ] {
            assert_eq!(parse_written_form(text), None, "{text}");
        }
    }
}
