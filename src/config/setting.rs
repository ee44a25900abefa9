//! How a setting is declared. A [`Setting`] holds one environment variable's
//! name, its line of documentation, its default and how its text becomes a
//! value (for whole numbers: the accepted range and what 0 means); reading
//! it, the error message naming it and the text `config check` prints for it
//! all follow from that one declaration.

use super::ConfigError;
use std::{fmt, ops::RangeInclusive, str::FromStr, time::Duration};

/// What `config check` prints instead of a secret.
pub const MASK: &str = "***";

/// The upper end of a range that accepts whatever the value's type holds.
pub const UNBOUNDED: u64 = u64::MAX;

const MINUTE: u64 = 60;
/// Seconds in a day, the unit of the `*_DAYS` settings.
pub const DAY: u64 = 24 * 3600;

/// The variables a configuration is read from: the process environment in
/// production, a map in tests.
pub struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Env<'a> {
    /// Reads variables through `lookup`.
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Env { lookup }
    }

    /// The text of `name`. Blank counts as unset, so that an empty `NAME=`
    /// line (as in `.env.example`) means "the default".
    pub fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }
}

/// One environment variable, declared once.
pub struct Setting<T: 'static> {
    /// The variable, e.g. `SESSION_MAX_DAYS`.
    pub name: &'static str,
    /// What it sets, in one line (the README and `.env.example` say more).
    pub doc: &'static str,
    /// A name the variable had before; still read, and refused when it
    /// disagrees with the current one.
    pub older_name: Option<&'static str>,
    kind: Kind<T>,
}

/// Declares settings. Each entry, a doc comment then `NAME: Type = setting;`,
/// becomes `pub const NAME: Setting<Type>` for the variable `NAME`, whose
/// line of documentation is that doc comment:
///
/// ```text
/// declare! {
///     /// How long a failed sign-in counts.
///     LOGIN_WINDOW_MINUTES: Duration = Setting::minutes(15, 1..=24 * 60);
/// }
/// ```
macro_rules! declare {
    ($($(#[doc = $doc:literal])+ $name:ident: $type:ty = $setting:expr;)*) => {
        $(
            $(#[doc = $doc])+
            pub const $name: $crate::config::setting::Setting<$type> = {
                // Typed before naming, so that closures in it know their types.
                let setting: $crate::config::setting::Setting<$type> = $setting;
                setting.named(stringify!($name), concat!($($doc),+))
            };
        )*
    };
}
pub(crate) use declare;

/// For a struct whose every field is a setting with a declared default:
/// `read` (each field from its variable) and `Default` (each field's
/// declared default), from one list of `field: SETTING`.
macro_rules! read_and_default {
    ($name:ident { $($field:ident: $setting:ident),* $(,)? }) => {
        impl $name {
            /// Each field from its variable, or its declared default.
            pub fn read(
                env: &$crate::config::setting::Env<'_>,
            ) -> Result<$name, $crate::config::ConfigError> {
                Ok($name { $($field: $setting.read(env)?),* })
            }
        }

        impl Default for $name {
            /// The declared defaults.
            fn default() -> Self {
                // Each of these settings declares its default, so the
                // type's own default is never used.
                $name { $($field: $setting.default().unwrap_or_default()),* }
            }
        }
    };
}
pub(crate) use read_and_default;

enum Kind<T: 'static> {
    /// A whole number in a range, converted to and from the value.
    Whole {
        default: Option<u64>,
        range: Range,
        from: fn(u64) -> T,
        to: fn(&T) -> u64,
    },
    /// Anything else: a parser whose error is the message after the
    /// variable's name, and how the value is printed.
    Text {
        default: Option<fn() -> T>,
        parse: fn(&str) -> Result<T, String>,
        show: fn(&T) -> String,
    },
}

/// The numbers a whole-number setting accepts, and the error that says so.
#[derive(Debug, Clone, Copy)]
struct Range {
    min: u64,
    max: u64,
    /// The largest value the setting's type holds: a `max` this large is no
    /// limit of ours and is not mentioned unless exceeded.
    limit: u64,
    /// What 0 means, when it is accepted and means something special.
    zero: Option<&'static str>,
}

impl Range {
    fn check(&self, n: u64) -> Result<u64, String> {
        if (self.min..=self.max).contains(&n) {
            return Ok(n);
        }
        let zero = self.zero.map(|z| format!(" (0 {z})")).unwrap_or_default();
        Err(if self.min == 0 {
            format!("must be at most {}{zero}", self.max)
        } else if self.max == self.limit && n < self.min {
            format!("must be at least {}", self.min)
        } else {
            format!("must be between {} and {}", self.min, self.max)
        })
    }
}

/// Integer types a whole-number setting can be stored as.
pub trait Count: Copy {
    /// The largest value of the type.
    const LIMIT: u64;
    /// Converts a number already checked against the setting's range.
    fn from_count(n: u64) -> Self;
    /// The number printed for the value.
    fn to_count(&self) -> u64;
}

impl Count for u32 {
    const LIMIT: u64 = u32::MAX as u64;
    fn from_count(n: u64) -> Self {
        u32::try_from(n).unwrap_or(u32::MAX)
    }
    fn to_count(&self) -> u64 {
        u64::from(*self)
    }
}

impl Count for usize {
    const LIMIT: u64 = usize::MAX as u64;
    fn from_count(n: u64) -> Self {
        usize::try_from(n).unwrap_or(usize::MAX)
    }
    fn to_count(&self) -> u64 {
        u64::try_from(*self).unwrap_or(u64::MAX)
    }
}

impl<T> Setting<T> {
    /// A whole number in `range`, stored as `T` through `from` and printed
    /// through `to`. `default` is in the same unit as the variable.
    pub const fn whole(
        default: u64,
        range: RangeInclusive<u64>,
        from: fn(u64) -> T,
        to: fn(&T) -> u64,
    ) -> Self {
        Setting::whole_or_derived(Some(default), range, from, to)
    }

    const fn whole_or_derived(
        default: Option<u64>,
        range: RangeInclusive<u64>,
        from: fn(u64) -> T,
        to: fn(&T) -> u64,
    ) -> Self {
        Setting::of(Kind::Whole {
            default,
            range: Range {
                min: *range.start(),
                max: *range.end(),
                limit: UNBOUNDED,
                zero: None,
            },
            from,
            to,
        })
    }

    /// Any other value: `parse` turns the variable's text into it (its
    /// error is the message after the variable's name) and `show` prints it
    /// for `config check` (secrets as [`MASK`]). `default: None`: the code
    /// reading the setting derives the default from other settings (see
    /// [`Setting::get`]).
    pub const fn text(
        default: Option<fn() -> T>,
        parse: fn(&str) -> Result<T, String>,
        show: fn(&T) -> String,
    ) -> Self {
        Setting::of(Kind::Text {
            default,
            parse,
            show,
        })
    }

    const fn of(kind: Kind<T>) -> Self {
        Setting {
            name: "",
            doc: "",
            older_name: None,
            kind,
        }
    }

    /// Names the setting: `declare!` gives it its constant's name and doc comment.
    pub const fn named(mut self, name: &'static str, doc: &'static str) -> Self {
        self.name = name;
        self.doc = doc.trim_ascii();
        self
    }

    /// Says what 0 means in the range error of a whole-number setting that
    /// accepts it (e.g. "turns the cache off").
    pub const fn zero_means(mut self, meaning: &'static str) -> Self {
        if let Kind::Whole { range, .. } = &mut self.kind {
            range.zero = Some(meaning);
        }
        self
    }

    /// Also reads the variable under `older`, its previous name.
    pub const fn older_name(mut self, older: &'static str) -> Self {
        self.older_name = Some(older);
        self
    }

    /// The value when the variable is set (under its name or its older
    /// name), `None` when it is not; an invalid value is an error naming the
    /// variable.
    pub fn get(&self, env: &Env<'_>) -> Result<Option<T>, ConfigError> {
        let current = self.parse_named(env, self.name)?;
        let Some(older) = self.older_name else {
            return Ok(current);
        };
        match (current, self.parse_named(env, older)?) {
            (Some(current), Some(previous)) if self.show(&current) != self.show(&previous) => {
                Err(ConfigError::new(
                    self.name,
                    format!(
                        "conflicts with {older}={} (its older name); set only {}",
                        self.show(&previous),
                        self.name
                    ),
                ))
            }
            (Some(current), _) => Ok(Some(current)),
            (None, previous) => Ok(previous),
        }
    }

    /// The value, or the declared default when the variable is unset. A
    /// setting without one ([`Setting::derived_count`], or `text` with
    /// `None`) is read with [`Setting::get`]; here it is required.
    pub fn read(&self, env: &Env<'_>) -> Result<T, ConfigError> {
        match (self.get(env)?, self.default()) {
            (Some(value), _) | (None, Some(value)) => Ok(value),
            (None, None) => Err(ConfigError::new(self.name, "must be set")),
        }
    }

    /// The declared default, if the setting has one.
    pub fn default(&self) -> Option<T> {
        match &self.kind {
            Kind::Whole { default, from, .. } => default.map(from),
            Kind::Text { default, .. } => default.map(|default| default()),
        }
    }

    /// The value as `config check` prints it: what the variable would be
    /// set to, with secrets as [`MASK`].
    pub fn show(&self, value: &T) -> String {
        match &self.kind {
            Kind::Whole { to, .. } => to(value).to_string(),
            Kind::Text { show, .. } => show(value),
        }
    }

    fn parse_named(&self, env: &Env<'_>, name: &'static str) -> Result<Option<T>, ConfigError> {
        let Some(raw) = env.raw(name) else {
            return Ok(None);
        };
        let value = match &self.kind {
            Kind::Whole { range, from, .. } => {
                parsed::<u64>(&raw).and_then(|n| range.check(n)).map(from)
            }
            Kind::Text { parse, .. } => parse(&raw),
        };
        value
            .map(Some)
            .map_err(|message| ConfigError::new(name, message))
    }
}

impl<T: Count> Setting<T> {
    /// A count stored as `T` (`u32`, `usize`); a range ending at
    /// [`UNBOUNDED`] accepts whatever `T` holds.
    pub const fn count(default: u64, range: RangeInclusive<u64>) -> Self {
        Setting::count_or_derived(Some(default), range)
    }

    /// A count whose default the code reading it derives from other
    /// settings or the machine (it reads the setting with [`Setting::get`]).
    pub const fn derived_count(range: RangeInclusive<u64>) -> Self {
        Setting::count_or_derived(None, range)
    }

    const fn count_or_derived(default: Option<u64>, range: RangeInclusive<u64>) -> Self {
        let mut setting = Setting::whole_or_derived(default, range, T::from_count, T::to_count);
        if let Kind::Whole { range, .. } = &mut setting.kind {
            range.limit = T::LIMIT;
            if range.max > T::LIMIT {
                range.max = T::LIMIT;
            }
        }
        setting
    }
}

impl Setting<Duration> {
    /// A duration given in whole seconds.
    pub const fn seconds(default: u64, range: RangeInclusive<u64>) -> Self {
        Setting::whole(default, range, Duration::from_secs, Duration::as_secs)
    }

    /// A duration given in whole minutes.
    pub const fn minutes(default: u64, range: RangeInclusive<u64>) -> Self {
        Setting::whole(
            default,
            range,
            |n| Duration::from_secs(n.saturating_mul(MINUTE)),
            |d| d.as_secs() / MINUTE,
        )
    }

    /// A duration given in whole days.
    pub const fn days(default: u64, range: RangeInclusive<u64>) -> Self {
        Setting::whole(default, range, days, |d| d.as_secs() / DAY)
    }
}

impl Setting<bool> {
    /// `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off`, in any case.
    pub const fn flag(default: bool) -> Self {
        let default: fn() -> bool = if default { || true } else { || false };
        Setting::text(Some(default), parse_bool, bool::to_string)
    }
}

/// `n` days.
pub fn days(n: u64) -> Duration {
    Duration::from_secs(n.saturating_mul(DAY))
}

/// The text parsed as `T` after trimming; the error quotes the text as given.
pub fn parsed<T: FromStr>(raw: &str) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    raw.trim()
        .parse()
        .map_err(|e| format!("{raw:?} is not valid: {e}"))
}

/// The text exactly as given (names, paths: spaces may be meant).
pub fn verbatim(raw: &str) -> Result<String, String> {
    Ok(raw.to_owned())
}

/// Prints a value with its `Display`.
pub fn display<T: fmt::Display>(value: &T) -> String {
    value.to_string()
}

/// Prints a list the way it is given: comma-separated.
// `&Vec` because this is the `show` of a `Setting<Vec<T>>`, whose type it must match.
#[allow(clippy::ptr_arg)]
pub fn comma_separated<T: fmt::Display>(items: &Vec<T>) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(format!("expected true or false, got {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T>(setting: &Setting<T>, pairs: &[(&str, &str)]) -> Result<T, String> {
        let lookup = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        };
        setting.read(&Env::new(&lookup)).map_err(|e| e.to_string())
    }

    declare! {
        /// A number of days.
        DAYS: Duration = Setting::days(30, 1..=3650);
        /// Seconds, where 0 means something.
        CAPPED: Duration = Setting::seconds(10, 0..=300).zero_means("refuses every reuse");
        /// A count without an upper bound of its own.
        AT_LEAST_ONE: u32 = Setting::count(10, 1..=UNBOUNDED);
        /// A setting that was renamed.
        NEW: Duration = Setting::days(7, 1..=365).older_name("OLD");
    }

    #[test]
    fn range_errors_name_the_variable_and_the_range() {
        for (error, expected) in [
            (
                read(&DAYS, &[("DAYS", "0")]),
                "DAYS: must be between 1 and 3650",
            ),
            (
                read(&CAPPED, &[("CAPPED", "301")]),
                "CAPPED: must be at most 300 (0 refuses every reuse)",
            ),
            (
                read(&AT_LEAST_ONE, &[("AT_LEAST_ONE", "0")]).map(|_| Duration::ZERO),
                "AT_LEAST_ONE: must be at least 1",
            ),
            (
                read(&AT_LEAST_ONE, &[("AT_LEAST_ONE", "4294967296")]).map(|_| Duration::ZERO),
                "AT_LEAST_ONE: must be between 1 and 4294967295",
            ),
            (
                read(&DAYS, &[("DAYS", "soon")]),
                "DAYS: \"soon\" is not valid: invalid digit found in string",
            ),
            (
                read(&NEW, &[("OLD", "3"), ("NEW", "5")]),
                "NEW: conflicts with OLD=3 (its older name); set only NEW",
            ),
            (
                read(&NEW, &[("OLD", "0")]),
                "OLD: must be between 1 and 365",
            ),
        ] {
            assert_eq!(error, Err(format!("invalid configuration: {expected}")));
        }
    }

    #[test]
    fn values_are_trimmed_blank_is_unset_and_shown_in_their_unit() {
        assert_eq!(read(&DAYS, &[("DAYS", " 2 ")]), Ok(days(2)));
        assert_eq!(read(&DAYS, &[("DAYS", "  ")]), Ok(days(30)));
        assert_eq!(DAYS.show(&days(12)), "12");
        assert_eq!(CAPPED.show(&Duration::from_secs(0)), "0");
        assert_eq!(DAYS.name, "DAYS");
        assert_eq!(DAYS.doc, "A number of days.");
    }

    #[test]
    fn an_older_name_is_read_while_the_two_agree() {
        assert_eq!(read(&NEW, &[("OLD", "3")]), Ok(days(3)));
        assert_eq!(read(&NEW, &[("OLD", "3"), ("NEW", "3")]), Ok(days(3)));
    }
}
