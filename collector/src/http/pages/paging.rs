//! Lists shown a page at a time: the page number from the query, the
//! "51–100 of 120 hosts" line, and previous/next links that keep the
//! list's filters.

use maud::{Markup, html};

use crate::auth::percent_encode;

/// Rows on one page of a list.
pub const PER_PAGE: usize = 50;

/// A query value as a form leaves it: blank means not given.
pub fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// A search's words (`q`), lower-cased; none when not given.
pub fn search_words(q: &Option<String>) -> Vec<String> {
    given(q)
        .map(|q| q.split_whitespace().map(str::to_lowercase).collect())
        .unwrap_or_default()
}

/// Whether every word is in `text` (lower-cased by the caller); true
/// without words.
pub fn has_words(words: &[String], text: &str) -> bool {
    words.iter().all(|w| text.contains(w.as_str()))
}

/// The page asked for (1 when none), or what is wrong with it.
pub fn page_number(v: &Option<String>) -> Result<usize, String> {
    match given(v) {
        None => Ok(1),
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| format!("page: {p:?} is not a page number (1, 2, ...)")),
    }
}

/// A list page's query and the page it asks for, or what is wrong with
/// either (the page answers 400 with it, its first page empty).
pub fn checked<Q>(
    query: Result<axum::extract::Query<Q>, axum::extract::rejection::QueryRejection>,
    page_of: impl Fn(&Q) -> &Option<String>,
) -> Result<(Q, usize), String> {
    let axum::extract::Query(q) = query.map_err(|e| e.body_text())?;
    let page = page_number(page_of(&q))?;
    Ok((q, page))
}

/// `path` with the filters that are given and the page (when past the first).
pub fn href(path: &str, filters: &[(&str, &Option<String>)], page: usize) -> String {
    let mut parts: Vec<String> = filters
        .iter()
        .filter_map(|(name, v)| given(v).map(|v| format!("{name}={}", percent_encode(&v))))
        .collect();
    if page > 1 {
        parts.push(format!("page={page}"));
    }
    if parts.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", parts.join("&"))
    }
}

/// One page of `rows`, with what the page needs to say about it.
pub struct Paged<T> {
    pub rows: Vec<T>,
    pub page: usize,
    pub total: usize,
}

impl<T> Paged<T> {
    /// Page `page` of all the matching `rows`.
    pub fn of(rows: Vec<T>, page: usize) -> Paged<T> {
        let total = rows.len();
        let rows = rows.into_iter().skip((page - 1) * PER_PAGE).take(PER_PAGE).collect();
        Paged { rows, page, total }
    }

    /// An empty first page (a refused query).
    pub fn none() -> Paged<T> {
        Paged {
            rows: Vec::new(),
            page: 1,
            total: 0,
        }
    }

    fn first(&self) -> usize {
        (self.page - 1) * PER_PAGE + 1
    }

    fn last(&self) -> usize {
        self.first() + self.rows.len().saturating_sub(1)
    }

    /// "1 host", "7 hosts", "51–100 of 120 hosts".
    pub fn counted(&self, one: &str, many: &str) -> String {
        let noun = if self.total == 1 { one } else { many };
        let (first, last) = (self.first(), self.last());
        if first == 1 && last == self.total {
            format!("{} {noun}", self.total)
        } else {
            format!("{first}–{last} of {} {noun}", self.total)
        }
    }

    /// What a page with no rows says: none match, or none on this page
    /// (a link back to the first).
    pub fn empty(&self, many: &str, first_page: &str) -> Markup {
        html! {
            @if self.total > 0 {
                p { "Nothing on page " (self.page) "; " (self.total) " " (many) " match. " a href=(first_page) { "First page" } }
            } @else {
                p { "No " (many) "." }
            }
        }
    }

    /// Previous and next links; `href(n)` is page n's address.
    pub fn nav(&self, href: impl Fn(usize) -> String) -> Markup {
        let prev = (self.page > 1).then(|| href(self.page - 1));
        let next = (self.last() < self.total).then(|| href(self.page + 1));
        pager("Pages", None, prev, next)
    }
}

/// The pages' navigation of every list: the previous page's link, what
/// this page shows, the next page's link. `label` names it for screen
/// readers, and must differ between two on one page.
pub fn pager(label: &str, count: Option<String>, prev: Option<String>, next: Option<String>) -> Markup {
    html! {
        nav.pager aria-label=(label) {
            @if let Some(p) = prev {
                a rel="prev" href=(p) { "← Previous" }
            }
            @if let Some(c) = count {
                span.count { (c) }
            }
            @if let Some(n) = next {
                a rel="next" href=(n) { "Next →" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pages_count_and_link_keeping_the_filters() {
        let p = Paged::of((0..120).collect::<Vec<_>>(), 3);
        assert_eq!(p.rows, (100..120).collect::<Vec<_>>());
        assert_eq!(p.counted("host", "hosts"), "101–120 of 120 hosts");
        assert_eq!(Paged::of(vec![1], 1).counted("host", "hosts"), "1 host");
        assert_eq!(Paged::of(vec![1, 2], 1).counted("host", "hosts"), "2 hosts");
        let nav = p.nav(|n| href("/hosts", &[("q", &Some("a b".into())), ("state", &None)], n));
        let nav = nav.into_string();
        assert!(nav.contains("href=\"/hosts?q=a%20b&amp;page=2\""), "{nav}");
        assert!(!nav.contains("next"), "{nav}");
        assert_eq!(href("/hosts", &[("q", &Some("  ".into()))], 1), "/hosts");
        assert_eq!(page_number(&None), Ok(1));
        assert_eq!(page_number(&Some(" 2 ".into())), Ok(2));
        assert!(page_number(&Some("0".into())).unwrap_err().starts_with("page: \"0\""));
        assert!(page_number(&Some("x".into())).is_err());
    }
}
