//! Test helpers of the audit module.

use async_trait::async_trait;

use crate::backend::{Capabilities, DeleteSelector, RecordStream, VectorDatabase};
use crate::error::Result;
use crate::filter::Filter;
use crate::query::{Projection, SearchHit, SearchRequest, TableStats};
use crate::record::MultimodalRecord;
use crate::schema::TableSchema;

/// A backend that does nothing: reads return at once with nothing found,
/// writes succeed without storing anything.
#[derive(Debug)]
pub(super) struct Nothing;

#[async_trait]
impl VectorDatabase for Nothing {
    fn backend_name(&self) -> &'static str {
        "nothing"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn create_table(&self, _: &str, _: &TableSchema) -> Result<()> {
        unimplemented!()
    }
    async fn table_schema(&self, _: &str) -> Result<TableSchema> {
        unimplemented!()
    }
    async fn list_tables(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    async fn drop_table(&self, _: &str) -> Result<()> {
        unimplemented!()
    }
    async fn insert(&self, _: &str, records: Vec<MultimodalRecord>) -> Result<u64> {
        Ok(records.len() as u64)
    }
    async fn insert_stream(&self, _: &str, _: RecordStream) -> Result<u64> {
        unimplemented!()
    }
    async fn upsert(&self, _: &str, _: Vec<MultimodalRecord>) -> Result<u64> {
        unimplemented!()
    }
    async fn delete(&self, _: &str, _: &DeleteSelector) -> Result<u64> {
        Ok(0)
    }
    async fn get(
        &self,
        _: &str,
        _: &[String],
        _: &Projection,
        _: Option<u64>,
    ) -> Result<Vec<MultimodalRecord>> {
        Ok(Vec::new())
    }
    async fn scan(&self, _: &str, _: &Projection, _: Option<u64>) -> Result<RecordStream> {
        unimplemented!()
    }
    async fn count(&self, _: &str, _: Option<&Filter>) -> Result<u64> {
        Ok(0)
    }
    async fn vector_search(&self, _: &str, _: &SearchRequest) -> Result<Vec<SearchHit>> {
        Ok(Vec::new())
    }
    async fn table_stats(&self, _: &str) -> Result<TableStats> {
        unimplemented!()
    }
}
