//! Reciprocal rank fusion of several ranked lists.

use std::collections::HashMap;

use super::SearchHit;

/// Fuses ranked lists with reciprocal rank fusion: each hit scores
/// `Σ 1 / (rrf_k + rank)` (rank from 1) over the lists it appears in; the
/// best `k` by fused score are returned, best first. A hit's `distance` is
/// kept from whichever list carried one.
///
/// ```
/// use hanzo_db::{reciprocal_rank_fusion, MultimodalRecord, SearchHit};
/// let hit = |id: &str| SearchHit { record: MultimodalRecord::new(id, vec![]), distance: None, score: None };
/// let fused = reciprocal_rank_fusion(&[vec![hit("a"), hit("b")], vec![hit("b"), hit("c")]], 60.0, 3);
/// assert_eq!(fused[0].record.id, "b");
/// ```
pub fn reciprocal_rank_fusion(lists: &[Vec<SearchHit>], rrf_k: f32, k: usize) -> Vec<SearchHit> {
    let mut fused: HashMap<&str, (f32, usize, SearchHit)> = HashMap::new();
    let mut order = 0;
    for list in lists {
        for (rank, hit) in list.iter().enumerate() {
            let add = 1.0 / (rrf_k + rank as f32 + 1.0);
            fused
                .entry(hit.record.id.as_str())
                .and_modify(|(score, _, kept)| {
                    *score += add;
                    if kept.distance.is_none() {
                        kept.distance = hit.distance;
                    }
                })
                .or_insert_with(|| {
                    order += 1;
                    (add, order, hit.clone())
                });
        }
    }
    let mut out: Vec<_> = fused.into_values().collect();
    out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    out.into_iter()
        .take(k)
        .map(|(score, _, mut hit)| {
            hit.score = Some(score);
            hit
        })
        .collect()
}
