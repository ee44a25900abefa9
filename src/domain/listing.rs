//! What a listing may ask for, checked once for the JSON API and the pages:
//! a [`Page`] (offset and size within bounds), the user filters and the
//! audit query (a positive user id, a time range that does not end before
//! it starts). Each adapter words a [`ListingError`] its own way (the API's
//! validation format, a form message on the pages); the rule is here.

use super::{AuditEventType, Role};
use chrono::{DateTime, Utc};

/// The largest page of any list (users, audit events).
pub const MAX_PAGE_SIZE: i64 = 100;

/// The furthest a page may start. Beyond it every page is empty anyway,
/// and the bound keeps `page * size` arithmetic far from overflow.
pub const MAX_OFFSET: i64 = 1_000_000_000;

/// A bound of a listing query that the caller's input broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ListingError {
    /// An offset below 0.
    #[error("The offset must be at least 0")]
    NegativeOffset,
    /// An offset beyond [`MAX_OFFSET`].
    #[error("The offset must be at most {MAX_OFFSET}")]
    OffsetTooLarge,
    /// A page size outside 1..=[`MAX_PAGE_SIZE`].
    #[error("The page size must be between 1 and {MAX_PAGE_SIZE}")]
    PageSize,
    /// A user id below 1.
    #[error("A user id is a positive whole number")]
    UserId,
    /// A time range whose end is before its start.
    #[error("The end is before the start")]
    UntilBeforeSince,
}

/// One window of a list: `limit` items after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    offset: i64,
    limit: i64,
}

impl Page {
    /// The first [`MAX_PAGE_SIZE`] items.
    pub const FIRST: Page = Page {
        offset: 0,
        limit: MAX_PAGE_SIZE,
    };

    /// Skips `offset` items, takes `limit`; refuses either out of bounds.
    pub fn new(offset: i64, limit: i64) -> Result<Page, ListingError> {
        if offset < 0 {
            return Err(ListingError::NegativeOffset);
        }
        if offset > MAX_OFFSET {
            return Err(ListingError::OffsetTooLarge);
        }
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(ListingError::PageSize);
        }
        Ok(Page { offset, limit })
    }

    /// Page `number` (from 1) of pages of `size` items, as the pages' links
    /// count them. A number out of range is brought within bounds (a
    /// hand-edited link shows the nearest page rather than an error); the
    /// size must be valid.
    pub fn numbered(number: i64, size: i64) -> Result<Page, ListingError> {
        let size = Page::new(0, size)?.limit;
        let last = MAX_OFFSET / size + 1;
        Page::new((number.clamp(1, last) - 1) * size, size)
    }

    /// Items skipped before this page.
    pub fn offset(self) -> i64 {
        self.offset
    }

    /// The page size.
    pub fn limit(self) -> i64 {
        self.limit
    }

    /// This page's number (from 1) when pages hold `limit` items.
    pub fn number(self) -> i64 {
        self.offset / self.limit + 1
    }
}

/// Filters of the user list (admin). Empty search text is no filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    /// Case-insensitive substring of the email, taken literally (`%`, `_`,
    /// quotes and FTS operators included). The user service answers a
    /// search for a character no address holds (a control character, NUL
    /// included, or a space) itself: PostgreSQL text cannot hold NUL, and
    /// SQLite's FTS5 ends its query at one.
    pub email_contains: Option<String>,
    pub role: Option<Role>,
    pub is_active: Option<bool>,
}

impl UserFilter {
    /// The filters of a search form or query string (empty text: no search).
    pub fn new(email_contains: Option<&str>, role: Option<Role>, is_active: Option<bool>) -> Self {
        UserFilter {
            email_contains: email_contains.filter(|q| !q.is_empty()).map(str::to_owned),
            role,
            is_active,
        }
    }
}

/// Filters of the audit log (admin): events by or about one user, of one
/// type, within a time range (both ends included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    user_id: Option<i64>,
    event_type: Option<AuditEventType>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

impl AuditQuery {
    /// Checks the user id (at least 1) and the range (`until` not before `since`).
    pub fn new(
        user_id: Option<i64>,
        event_type: Option<AuditEventType>,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<AuditQuery, ListingError> {
        if user_id.is_some_and(|id| id < 1) {
            return Err(ListingError::UserId);
        }
        if let (Some(since), Some(until)) = (since, until) {
            if until < since {
                return Err(ListingError::UntilBeforeSince);
            }
        }
        Ok(AuditQuery {
            user_id,
            event_type,
            since,
            until,
        })
    }

    /// Events done by, or concerning, this user.
    pub fn user_id(&self) -> Option<i64> {
        self.user_id
    }

    /// Only events of this type.
    pub fn event_type(&self) -> Option<AuditEventType> {
        self.event_type
    }

    /// At or after this instant.
    pub fn since(&self) -> Option<DateTime<Utc>> {
        self.since
    }

    /// At or before this instant.
    pub fn until(&self) -> Option<DateTime<Utc>> {
        self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_stay_within_bounds() {
        assert_eq!(Page::new(0, 1).map(|p| (p.offset(), p.limit())), Ok((0, 1)));
        assert_eq!(
            Page::new(MAX_OFFSET, MAX_PAGE_SIZE).map(Page::offset),
            Ok(MAX_OFFSET)
        );
        assert_eq!(Page::new(-1, 10), Err(ListingError::NegativeOffset));
        assert_eq!(
            Page::new(MAX_OFFSET + 1, 10),
            Err(ListingError::OffsetTooLarge)
        );
        assert_eq!(Page::new(0, 0), Err(ListingError::PageSize));
        assert_eq!(Page::new(0, MAX_PAGE_SIZE + 1), Err(ListingError::PageSize));
    }

    #[test]
    fn numbered_pages_are_brought_within_bounds() {
        let page = Page::numbered(3, 20).expect("valid");
        assert_eq!((page.offset(), page.limit(), page.number()), (40, 20, 3));
        assert_eq!(Page::numbered(0, 20).map(Page::offset), Ok(0));
        assert_eq!(Page::numbered(-5, 20).map(Page::offset), Ok(0));
        let far = Page::numbered(i64::MAX, 100).expect("clamped");
        assert!(far.offset() <= MAX_OFFSET, "{far:?}");
        assert_eq!(Page::numbered(1, 101), Err(ListingError::PageSize));
    }

    #[test]
    fn audit_queries_need_a_positive_user_and_an_ordered_range() {
        let day = |d: u32| {
            chrono::NaiveDate::from_ymd_opt(2026, 1, d)
                .expect("date")
                .and_hms_opt(0, 0, 0)
                .expect("time")
                .and_utc()
        };
        assert!(AuditQuery::new(Some(1), None, Some(day(1)), Some(day(1))).is_ok());
        assert_eq!(
            AuditQuery::new(Some(0), None, None, None),
            Err(ListingError::UserId)
        );
        assert_eq!(
            AuditQuery::new(None, None, Some(day(2)), Some(day(1))),
            Err(ListingError::UntilBeforeSince)
        );
    }

    #[test]
    fn empty_search_text_is_no_filter() {
        assert_eq!(UserFilter::new(Some(""), None, None).email_contains, None);
        // Taken literally: a space is searched for (and matches nobody).
        assert_eq!(
            UserFilter::new(Some(" "), None, None)
                .email_contains
                .as_deref(),
            Some(" ")
        );
    }
}
