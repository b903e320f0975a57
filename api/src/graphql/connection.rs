//! Relay cursor connections (`first`/`after`, `pageInfo`, edges with opaque cursors). Every
//! list is ordered by a sort key that never changes for an item, and its cursor encodes that
//! key, so pages stay stable while items are added or removed.

use crate::error::ApiError;
use async_graphql::OutputType;
use async_graphql::connection::{Connection, Edge};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub const DEFAULT_PAGE: i32 = 20;
pub const MAX_PAGE: i32 = 100;

/// A list field's complexity for the query limit: its page size (`first`, default 20, at
/// most 100) times its items' complexity.
pub fn list_complexity(first: Option<i32>, child_complexity: usize) -> usize {
    let size = usize::try_from(first.unwrap_or(DEFAULT_PAGE).clamp(0, MAX_PAGE)).unwrap_or(0);
    size.saturating_mul(child_complexity).saturating_add(1)
}

/// The page size asked for, checked.
pub fn page_size(first: Option<i32>) -> Result<usize, ApiError> {
    match first.unwrap_or(DEFAULT_PAGE) {
        n @ 1..=MAX_PAGE => Ok(usize::try_from(n).unwrap_or(1)),
        _ => Err(ApiError::bad_input(
            "first",
            format!("`first` must be between 1 and {MAX_PAGE}"),
        )),
    }
}

pub fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

/// The sort key inside a cursor this API issued.
pub fn decode_cursor(cursor: Option<&str>) -> Result<Option<String>, ApiError> {
    cursor
        .map(|c| {
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    ApiError::bad_input("after", "`after` is not a cursor from this API")
                })
        })
        .transpose()
}

/// One page of `items` (each with its sort key, ascending) after the `after` cursor.
pub fn page<T: OutputType>(
    mut items: Vec<(String, T)>,
    first: Option<i32>,
    after: Option<String>,
) -> Result<Connection<String, T>, ApiError> {
    let size = page_size(first)?;
    let after = decode_cursor(after.as_deref())?;
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let start = after.map_or(0, |after| {
        items.partition_point(|(key, _)| key.as_str() <= after.as_str())
    });
    let has_previous = start > 0;
    let rest: Vec<(String, T)> = items.into_iter().skip(start).collect();
    let has_next = rest.len() > size;
    let mut connection = Connection::new(has_previous, has_next);
    connection.edges.extend(
        rest.into_iter()
            .take(size)
            .map(|(key, node)| Edge::new(encode_cursor(&key), node)),
    );
    Ok(connection)
}
