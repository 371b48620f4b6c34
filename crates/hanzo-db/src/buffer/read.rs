//! Reads over the engine and the buffer together: the newest state of each
//! buffered id over the engine's rows (see "Visibility" in
//! `docs/write-buffer-format.md`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;

use super::Core;
use super::view::{Pending, merge_hits, nearest, normalise_filter, view_get, view_iter};
use crate::backend::RecordStream;
use crate::error::Result;
use crate::filter::{Condition, Filter, Leaf, Scalar};
use crate::query::{Projection, SearchHit, SearchRequest};
use crate::record::MultimodalRecord;

impl Core {
    pub(super) async fn get(
        &self,
        table: &str,
        ids: &[String],
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<Vec<MultimodalRecord>> {
        let t = match (version, self.existing(table)) {
            (None, Some(t)) => t,
            (Some(_), Some(_)) => {
                self.flush_table(table).await?;
                return self.inner.get(table, ids, projection, version).await;
            }
            (_, None) => return self.inner.get(table, ids, projection, version).await,
        };
        let mut buffered: HashMap<&str, Option<MultimodalRecord>> = HashMap::new();
        {
            let st = t.state();
            for id in ids {
                if let Some(p) = view_get(&st.overlay, st.folding.as_deref(), id) {
                    let r = match p {
                        Pending::Put { row, .. } => Some(row.project(projection)),
                        Pending::Delete => None,
                    };
                    buffered.entry(id.as_str()).or_insert(r);
                }
            }
        }
        let rest: Vec<String> = ids
            .iter()
            .filter(|id| !buffered.contains_key(id.as_str()))
            .cloned()
            .collect();
        let mut from_engine: HashMap<String, MultimodalRecord> = if rest.is_empty() {
            HashMap::new()
        } else {
            self.inner
                .get(table, &rest, projection, None)
                .await?
                .into_iter()
                .map(|r| (r.id.clone(), r))
                .collect()
        };
        Ok(ids
            .iter()
            .filter_map(|id| match buffered.remove(id.as_str()) {
                Some(r) => r,
                None => from_engine.remove(id),
            })
            .collect())
    }

    pub(super) async fn scan(
        &self,
        table: &str,
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<RecordStream> {
        let t = match (version, self.existing(table)) {
            (None, Some(t)) => t,
            (Some(_), Some(_)) => {
                self.flush_table(table).await?;
                return self.inner.scan(table, projection, version).await;
            }
            (_, None) => return self.inner.scan(table, projection, version).await,
        };
        let _engine = t.engine_lock.lock().await;
        let mut masked: HashSet<Arc<str>> = HashSet::new();
        let mut puts = Vec::new();
        {
            let st = t.state();
            for (id, p) in view_iter(&st.overlay, st.folding.as_deref()) {
                masked.insert(id.clone());
                if let Pending::Put { row, seq, .. } = p {
                    puts.push((*seq, row.clone()));
                }
            }
        }
        let stream = self.inner.scan(table, projection, None).await?;
        drop(_engine);
        if masked.is_empty() {
            return Ok(stream);
        }
        puts.sort_by_key(|(seq, _)| *seq);
        let tail: Vec<MultimodalRecord> = puts.iter().map(|(_, r)| r.project(projection)).collect();
        let tail = futures::stream::iter((!tail.is_empty()).then_some(Ok(tail)));
        Ok(stream
            .map(move |batch| {
                batch.map(|rows| {
                    rows.into_iter()
                        .filter(|r| !masked.contains(r.id.as_str()))
                        .collect::<Vec<_>>()
                })
            })
            .filter(|b| futures::future::ready(b.as_ref().map_or(true, |rows| !rows.is_empty())))
            .chain(tail)
            .boxed())
    }

    pub(super) async fn count(&self, table: &str, filter: Option<&Filter>) -> Result<u64> {
        let Some(t) = self.existing(table) else {
            return self.inner.count(table, filter).await;
        };
        // No fold runs while counting: the engine and the buffer are read at one moment.
        let _engine = t.engine_lock.lock().await;
        let normal = filter.map(|f| normalise_filter(&t.schema, f));
        let mut add = 0u64;
        let mut hidden_ids: Vec<Scalar> = Vec::new();
        {
            let st = t.state();
            for (id, p) in view_iter(&st.overlay, st.folding.as_deref()) {
                if p.masks_engine_row() {
                    hidden_ids.push(Scalar::Str(id.to_string()));
                }
                if let Pending::Put { row, .. } = p {
                    if row.matches(normal.as_ref()) {
                        add += 1;
                    }
                }
            }
        }
        let base = self.inner.count(table, filter).await?;
        let hidden = if hidden_ids.is_empty() {
            0
        } else {
            let ids = Filter::Leaf(Leaf {
                path: vec!["id".into()],
                op: Condition::In {
                    values: hidden_ids,
                    negated: false,
                },
            });
            let f = match filter {
                Some(f) => f.clone().and(ids),
                None => ids,
            };
            self.inner.count(table, Some(&f)).await?
        };
        Ok(base.saturating_sub(hidden) + add)
    }

    pub(super) async fn vector_search(
        &self,
        table: &str,
        req: &SearchRequest,
    ) -> Result<Vec<SearchHit>> {
        let t = match (req.version, self.existing(table)) {
            (None, Some(t)) => t,
            (Some(_), Some(_)) => {
                self.flush_table(table).await?;
                return self.inner.vector_search(table, req).await;
            }
            (_, None) => return self.inner.vector_search(table, req).await,
        };
        let Some(query) = req.vector.as_deref() else {
            return self.inner.vector_search(table, req).await;
        };
        let metric = req.metric.unwrap_or(t.schema.metric);
        let normal = req.filter.as_ref().map(|f| normalise_filter(&t.schema, f));
        let snapshot = {
            let st = t.state();
            if st.overlay.is_empty() && st.folding.is_none() {
                None
            } else {
                let rows =
                    view_iter(&st.overlay, st.folding.as_deref()).filter_map(|(_, p)| match p {
                        Pending::Put { row, .. } => Some(row),
                        Pending::Delete => None,
                    });
                let candidates = nearest(rows, query, metric, normal.as_ref(), req.k);
                let masked: HashSet<Arc<str>> = view_iter(&st.overlay, st.folding.as_deref())
                    .map(|(id, _)| id.clone())
                    .collect();
                // Engine rows the view may hide: replaced and deleted ids, and
                // rows of a running fold that may already have landed.
                let budget = st.overlay.values().filter(|p| p.masks_engine_row()).count()
                    + st.folding.as_ref().map_or(0, |f| f.len());
                Some((candidates, masked, budget))
            }
        };
        let Some((candidates, masked, budget)) = snapshot else {
            return self.inner.vector_search(table, req).await;
        };
        // Ask for a few more rows than k, and again for more when the buffer
        // hid so many that fewer than k are left (most hidden rows are far away).
        let most = req.k + masked.len();
        let mut wide = req.clone();
        wide.k = (req.k + budget.min(2 * req.k + 8)).min(most);
        loop {
            let hits = self.inner.vector_search(table, &wide).await?;
            let hidden = hits
                .iter()
                .filter(|h| masked.contains(h.record.id.as_str()))
                .count();
            let short = hits.len() == wide.k && hits.len() - hidden < req.k;
            if !short || wide.k >= most {
                return Ok(merge_hits(
                    candidates,
                    hits,
                    &masked,
                    &req.projection,
                    req.k,
                ));
            }
            wide.k = (wide.k * 2).min(most);
        }
    }
}
