//! Pages of a list: `?limit=N&cursor=C`. The body stays the JSON array it always was,
//! so existing clients read the first page unchanged; the next page's address is in a
//! `Link: <…>; rel="next"` header (as GitHub's API does) and its cursor in
//! `X-Next-Cursor`. A cursor is opaque to clients: the position after the page's last item.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::domain::Violation;

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 1000 (100 by default).
    pub limit: Option<usize>,
    /// Where the page starts: the `X-Next-Cursor` of the page before.
    pub cursor: Option<String>,
}

/// One page of items, with the way to the next.
pub struct Page<T> {
    items: Vec<T>,
    next: Option<String>,
    uri: Uri,
}

fn engine() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

fn bad(field: &str, code: &str, message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "request.invalid", "Invalid request", "fix the query parameters listed in `errors`")
        .with_errors(vec![Violation::new(field, code, message)])
}

impl PageQuery {
    /// The page after the cursor of `items`, listed in the order of `key` (unique per item).
    pub fn page<T>(&self, mut items: Vec<T>, key: impl Fn(&T) -> String, uri: Uri) -> Result<Page<T>, ApiError> {
        items.sort_by_cached_key(|item| key(item));
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(bad("limit", "page.limit.out_of_range", format!("limit must be between 1 and {MAX_LIMIT} (got {limit})")));
        }
        let after = match &self.cursor {
            None => None,
            Some(cursor) => Some(
                engine()
                    .decode(cursor)
                    .ok()
                    .and_then(|raw| String::from_utf8(raw).ok())
                    .ok_or_else(|| bad("cursor", "page.cursor.invalid", "this cursor was not given by this API; start again without one".into()))?,
            ),
        };
        let mut rest: Vec<T> = match &after {
            None => items,
            Some(after) => items.into_iter().filter(|item| key(item) > *after).collect(),
        };
        let next = (rest.len() > limit).then(|| engine().encode(key(&rest[limit - 1])));
        rest.truncate(limit);
        Ok(Page { items: rest, next, uri })
    }
}

impl<T: Serialize> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(next) = &self.next {
            let query: Vec<String> = self
                .uri
                .query()
                .unwrap_or_default()
                .split('&')
                .filter(|p| !p.is_empty() && !p.starts_with("cursor="))
                .map(str::to_owned)
                .chain([format!("cursor={next}")])
                .collect();
            let link = format!("<{}?{}>; rel=\"next\"", self.uri.path(), query.join("&"));
            if let (Ok(link), Ok(cursor)) = (HeaderValue::from_str(&link), HeaderValue::from_str(next)) {
                headers.insert(header::LINK, link);
                headers.insert("x-next-cursor", cursor);
            }
        }
        (headers, Json(self.items)).into_response()
    }
}

/// A key that grows as time goes back: for lists newest first.
pub fn newest_first(at: time::OffsetDateTime, id: &str) -> String {
    let nanos = at.unix_timestamp_nanos().clamp(0, i128::from(u64::MAX)) as u64;
    format!("{:020}/{id}", u64::MAX - nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages(limit: usize, items: Vec<u32>) -> Vec<Vec<u32>> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let query = PageQuery { limit: Some(limit), cursor: cursor.clone() };
            let page = query.page(items.clone(), |n| format!("{n:05}"), "/x?limit=2".parse().unwrap()).unwrap();
            out.push(page.items);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return out,
            }
        }
    }

    #[test]
    fn pages_cover_every_item_once_and_the_last_has_no_next() {
        assert_eq!(pages(2, vec![1, 2, 3, 4, 5]), vec![vec![1, 2], vec![3, 4], vec![5]]);
        assert_eq!(pages(5, vec![1, 2, 3, 4, 5]), vec![vec![1, 2, 3, 4, 5]]);
        assert_eq!(pages(3, vec![]), vec![Vec::<u32>::new()]);
    }

    #[test]
    fn the_next_link_keeps_the_query_and_bad_input_is_refused() {
        let page = PageQuery { limit: Some(1), cursor: None }.page(vec![1, 2], |n: &u32| n.to_string(), "/api/v1/wars?limit=1".parse().unwrap()).unwrap();
        let response = page.into_response();
        let link = response.headers()[header::LINK].to_str().unwrap().to_owned();
        assert!(link.starts_with("</api/v1/wars?limit=1&cursor=") && link.ends_with(">; rel=\"next\""), "{link}");
        assert!(PageQuery { limit: Some(0), cursor: None }.page(vec![1], |n: &u32| n.to_string(), "/x".parse().unwrap()).is_err());
        assert!(PageQuery { limit: None, cursor: Some("%%".into()) }.page(vec![1], |n: &u32| n.to_string(), "/x".parse().unwrap()).is_err());
    }

    #[test]
    fn newer_sorts_first() {
        let old = time::OffsetDateTime::from_unix_timestamp(1).unwrap();
        let new = time::OffsetDateTime::from_unix_timestamp(2).unwrap();
        assert!(newest_first(new, "a") < newest_first(old, "a"));
    }
}
