//! List queries in SQL: a [`ListQuery`] and the caller's visibility rules
//! become one `SELECT` with keyset paging after the marker, served by an
//! index whatever the catalogue's size (`plan` picks how, `sql` writes it).

mod plan;
mod sql;

use std::collections::HashMap;

use crate::auth::caller::Caller;
use crate::db::images::{images_from_rows, ImageRepo, COLUMNS};
use crate::image::list_query::ListQuery;
use crate::image::Image;
use crate::ports::{SqlValue, StoreError};

impl ImageRepo<'_> {
    /// One page of the images `caller` may list, after `marker` (already
    /// resolved to a visible image), plus whether more follow.
    pub fn list(
        &self,
        q: &ListQuery,
        caller: &Caller,
        marker: Option<&Image>,
    ) -> Result<(Vec<Image>, bool), StoreError> {
        self.list_with_cap(q, caller, marker, plan::PROBE_CAP, true)
    }

    /// [`Self::list`] with the probe's cap and leads given (tests force each
    /// driver).
    fn list_with_cap(
        &self,
        q: &ListQuery,
        caller: &Caller,
        marker: Option<&Image>,
        cap: i64,
        leads: bool,
    ) -> Result<(Vec<Image>, bool), StoreError> {
        let driver = plan::choose(self.db, q, caller, cap, leads)?;
        let (page_sql, page_params) = sql::page_statement(&driver, q, caller, marker);
        // First the ids and sizes of the page, then the rows that fit in
        // PAGE_BYTES: a page of huge records stays bounded in memory (and
        // `next` points past the last one shown).
        let sizes = self.db.execute(&page_sql, &page_params)?;
        let limit = i64::from(q.limit);
        let mut ids: Vec<String> = Vec::new();
        let mut bytes = 0i64;
        let mut more = sizes.rows.len() as i64 > limit;
        for row in sizes.rows.iter().take(q.limit as usize) {
            let size = row.get(1).and_then(SqlValue::as_i64).unwrap_or(0);
            if !ids.is_empty() && bytes + size > PAGE_BYTES {
                more = true;
                break;
            }
            bytes += size;
            if let Some(id) = row.first().and_then(SqlValue::as_str) {
                ids.push(id.to_string());
            }
        }
        if ids.is_empty() {
            return Ok((Vec::new(), false));
        }
        let marks = vec!["?"; ids.len()].join(", ");
        let params: Vec<SqlValue> = ids.iter().map(|i| i.as_str().into()).collect();
        let rows = self.db.execute(
            &format!("SELECT {COLUMNS} FROM images WHERE id IN ({marks})"),
            &params,
        )?;
        let mut by_id: HashMap<String, Image> = images_from_rows(rows)?
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        let images = ids.iter().filter_map(|id| by_id.remove(id)).collect();
        Ok((images, more))
    }
}

/// The most record bytes (properties, tags, locations, name) one page holds;
/// a page always holds at least one image.
pub(crate) const PAGE_BYTES: i64 = 4 << 20;

#[cfg(test)]
mod tests;
