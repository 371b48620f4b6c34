//! [`VectorDatabase`] for [`PostgresBackend`]: every operation as SQL.

use super::*;

#[async_trait]
impl VectorDatabase for PostgresBackend {
    fn backend_name(&self) -> &'static str {
        ENGINE
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            full_text: true,
            vector_indexes: vec!["hnsw".into(), "ivf_flat".into()],
            time_travel: false,
            compaction: false,
            scalar_indexes: true,
            max_dimension: Some(MAX_DIMENSION),
        }
    }

    async fn create_table(&self, name: &str, schema: &TableSchema) -> Result<()> {
        if schema.dimension > MAX_DIMENSION {
            return Err(Error::BadSchema {
                reason: format!(
                    "pgvector stores at most {MAX_DIMENSION} dimensions, the schema asks for {}",
                    schema.dimension
                ),
            });
        }
        let json = serde_json::to_string(schema).expect("schemas serialise");
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| map_err("begin", name, e))?;
        let inserted = tx
            .execute(
                &format!(
                    "INSERT INTO {} (name, schema) VALUES ($1, $2::text::jsonb) ON CONFLICT (name) DO NOTHING",
                    self.catalog()
                ),
                &[&name, &json],
            )
            .await
            .map_err(|e| map_err("create table", name, e))?;
        if inserted == 0 {
            return Err(Error::TableExists { name: name.into() });
        }
        tx.batch_execute(&sql::create_table_sql(&self.qualified(name), schema))
            .await
            .map_err(|e| match e.as_db_error().map(|d| d.code().code()) {
                Some("42P07") => Error::TableExists { name: name.into() },
                _ => map_err("create table", name, e),
            })?;
        tx.commit()
            .await
            .map_err(|e| map_err("create table", name, e))?;
        self.tables.write().await.insert(
            name.to_string(),
            TableInfo {
                schema: schema.clone(),
                vector_index: None,
            },
        );
        Ok(())
    }

    async fn table_schema(&self, name: &str) -> Result<TableSchema> {
        Ok(self.info(name).await?.schema)
    }

    async fn list_tables(&self) -> Result<Vec<String>> {
        let client = self.client().await?;
        let rows = client
            .query(&format!("SELECT name FROM {}", self.catalog()), &[])
            .await
            .map_err(|e| map_err("list tables", "*", e))?;
        let mut names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        names.sort();
        Ok(names)
    }

    async fn drop_table(&self, name: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| map_err("begin", name, e))?;
        let n = tx
            .execute(
                &format!("DELETE FROM {} WHERE name = $1", self.catalog()),
                &[&name],
            )
            .await
            .map_err(|e| map_err("drop table", name, e))?;
        if n == 0 {
            return Err(Error::TableNotFound { name: name.into() });
        }
        tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", self.qualified(name)))
            .await
            .map_err(|e| map_err("drop table", name, e))?;
        tx.commit()
            .await
            .map_err(|e| map_err("drop table", name, e))?;
        self.tables.write().await.remove(name);
        Ok(())
    }

    async fn insert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64> {
        self.write(table, &records, false).await
    }

    async fn insert_stream(&self, table: &str, mut batches: RecordStream) -> Result<u64> {
        let mut rows = 0u64;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            if batch.is_empty() {
                continue;
            }
            self.write(table, &batch, false).await?;
            rows += batch.len() as u64;
        }
        Ok(rows)
    }

    async fn upsert(&self, table: &str, records: Vec<MultimodalRecord>) -> Result<u64> {
        self.write(table, &records, true).await
    }

    async fn delete(&self, table: &str, selector: &DeleteSelector) -> Result<u64> {
        let info = self.info(table).await?;
        let mut p = Params::default();
        let cond = match selector {
            DeleteSelector::Ids(ids) => format!("id = ANY({}::text[])", p.push(ids.clone())),
            DeleteSelector::Filter(f) => filter::to_sql(f, &info.schema, &mut p)?,
        };
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| map_err("begin", table, e))?;
        let n = tx
            .execute(
                &format!("DELETE FROM {} WHERE {cond}", self.qualified(table)),
                &p.refs(),
            )
            .await
            .map_err(|e| map_err("delete", table, e))?;
        if n > 0 {
            bump_version(&tx, &self.catalog(), table).await?;
        }
        tx.commit().await.map_err(|e| map_err("delete", table, e))?;
        Ok(n)
    }

    async fn get(
        &self,
        table: &str,
        ids: &[String],
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<Vec<MultimodalRecord>> {
        self.no_time_travel(version)?;
        let info = self.info(table).await?;
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {} FROM {} WHERE id = ANY($1::text[])",
                    sql::select_list(&info.schema, projection),
                    self.qualified(table)
                ),
                &[&ids],
            )
            .await
            .map_err(|e| map_err("get", table, e))?;
        let mut by_id = HashMap::with_capacity(rows.len());
        for row in &rows {
            let r = sql::decode_row(&info.schema, row, projection)?;
            by_id.insert(r.id.clone(), r);
        }
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    async fn scan(
        &self,
        table: &str,
        projection: &Projection,
        version: Option<u64>,
    ) -> Result<RecordStream> {
        self.no_time_travel(version)?;
        let info = self.info(table).await?;
        let query = format!(
            "SELECT {} FROM {} WHERE id > $1 ORDER BY id LIMIT {SCAN_PAGE}",
            sql::select_list(&info.schema, projection),
            self.qualified(table)
        );
        let pool = self.pool.clone();
        let projection = projection.clone();
        let name = table.to_string();
        // Keyset pages: each page is its own short query, so no connection
        // or transaction is held while the caller consumes the stream.
        let state = Some(String::new());
        Ok(futures::stream::unfold(state, move |last| {
            let (pool, query, info, projection, name) = (
                pool.clone(),
                query.clone(),
                info.clone(),
                projection.clone(),
                name.clone(),
            );
            async move {
                let last = last?;
                let page = async {
                    let client = pool
                        .get()
                        .await
                        .map_err(|e| Error::engine(ENGINE, "scan", e))?;
                    let rows = client
                        .query(&query, &[&last])
                        .await
                        .map_err(|e| map_err("scan", &name, e))?;
                    rows.iter()
                        .map(|row| sql::decode_row(&info.schema, row, &projection))
                        .collect::<Result<Vec<_>>>()
                }
                .await;
                match page {
                    Ok(records) if records.is_empty() => None,
                    Ok(records) => {
                        let next = (records.len() as i64 == SCAN_PAGE)
                            .then(|| records.last().map(|r| r.id.clone()))
                            .flatten();
                        Some((Ok(records), next))
                    }
                    Err(e) => Some((Err(e), None)),
                }
            }
        })
        .boxed())
    }

    async fn count(&self, table: &str, filter: Option<&Filter>) -> Result<u64> {
        let info = self.info(table).await?;
        let mut p = Params::default();
        let cond = self.where_clause(&info.schema, filter, &mut p)?;
        let client = self.client().await?;
        let row = client
            .query_one(
                &format!("SELECT count(*) FROM {}{cond}", self.qualified(table)),
                &p.refs(),
            )
            .await
            .map_err(|e| map_err("count", table, e))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn vector_search(&self, table: &str, req: &SearchRequest) -> Result<Vec<SearchHit>> {
        self.no_time_travel(req.version)?;
        let info = self.info(table).await?;
        let vector = req
            .vector
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("vector search needs a vector".into()))?;
        let metric = req.metric.unwrap_or(info.schema.metric);
        let op = sql::distance_op(metric);
        let mut p = Params::default();
        let q = p.push(pgvector::Vector::from(vector.clone()));
        let cond = self.where_clause(&info.schema, req.filter.as_ref(), &mut p)?;
        let limit = p.push(req.k as i64);
        let query = format!(
            "SELECT {}, (vector {op} {q}::vector)::float8 AS _distance FROM {}{cond} \
             ORDER BY vector {op} {q}::vector LIMIT {limit}",
            sql::select_list(&info.schema, &req.projection),
            self.qualified(table),
        );
        let client = self.client().await?;
        // The index serves only searches in the metric it was built for.
        let uses_index = metric == info.schema.metric;
        if let Some(settings) =
            index::search_settings(info.vector_index.filter(|_| uses_index), req)
        {
            client
                .batch_execute(&settings)
                .await
                .map_err(|e| map_err("search settings", table, e))?;
        }
        // Unfiltered searches share one prepared statement per connection;
        // filters vary in shape, so theirs are not kept.
        let rows = if req.filter.is_none() {
            let stmt = client
                .prepare_cached(&query)
                .await
                .map_err(|e| map_err("search", table, e))?;
            client.query(&stmt, &p.refs()).await
        } else {
            client.query(&query, &p.refs()).await
        }
        .map_err(|e| map_err("search", table, e))?;
        let mut hits = rows
            .iter()
            .map(|row| {
                let raw: f64 = row.get("_distance");
                Ok(SearchHit {
                    record: sql::decode_row(&info.schema, row, &req.projection)?,
                    distance: Some(sql::to_distance(metric, raw)),
                    score: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // IVFFlat's iterative scan returns rows in relaxed order.
        hits.sort_by(|a, b| {
            a.distance
                .unwrap_or(f32::MAX)
                .total_cmp(&b.distance.unwrap_or(f32::MAX))
        });
        Ok(hits)
    }

    async fn text_search(&self, table: &str, req: &SearchRequest) -> Result<Vec<SearchHit>> {
        self.no_time_travel(req.version)?;
        let info = self.info(table).await?;
        let text = req
            .text
            .clone()
            .ok_or_else(|| Error::InvalidArgument("text search needs a query".into()))?;
        let mut p = Params::default();
        let q = p.push(text);
        let doc = "to_tsvector('simple', coalesce(text, ''))";
        let mut cond = format!(" WHERE {doc} @@ websearch_to_tsquery('simple', {q}::text)");
        if let Some(f) = &req.filter {
            cond.push_str(&format!(
                " AND {}",
                filter::to_sql(f, &info.schema, &mut p)?
            ));
        }
        let limit = p.push(req.k as i64);
        let query = format!(
            "SELECT {}, ts_rank_cd({doc}, websearch_to_tsquery('simple', {q}::text))::float4 AS _score \
             FROM {}{cond} ORDER BY _score DESC, id LIMIT {limit}",
            sql::select_list(&info.schema, &req.projection),
            self.qualified(table),
        );
        let client = self.client().await?;
        let rows = client
            .query(&query, &p.refs())
            .await
            .map_err(|e| map_err("text search", table, e))?;
        rows.iter()
            .map(|row| {
                Ok(SearchHit {
                    record: sql::decode_row(&info.schema, row, &req.projection)?,
                    distance: None,
                    score: Some(row.get::<_, f32>("_score")),
                })
            })
            .collect()
    }

    async fn create_index(&self, table: &str, spec: &IndexSpec) -> Result<()> {
        let info = self.info(table).await?;
        let rows = self.count(table, None).await?;
        let (statements, vector_index) = index::index_ddl(
            &self.qualified(table),
            table,
            &info.schema,
            spec,
            rows,
            ENGINE,
        )?;
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| map_err("begin", table, e))?;
        for s in &statements {
            tx.batch_execute(s)
                .await
                .map_err(|e| map_err("create index", table, e))?;
        }
        if let Some(vi) = vector_index {
            let json = serde_json::to_string(&vi).expect("index serialises");
            tx.execute(
                &format!(
                    "UPDATE {} SET vector_index = $2::text::jsonb, version = version + 1 WHERE name = $1",
                    self.catalog()
                ),
                &[&table, &json],
            )
            .await
            .map_err(|e| map_err("create index", table, e))?;
        }
        tx.commit()
            .await
            .map_err(|e| map_err("create index", table, e))?;
        if let Some(vi) = vector_index {
            if let Some(i) = self.tables.write().await.get_mut(table) {
                i.vector_index = Some(vi);
            }
        }
        Ok(())
    }

    async fn list_indexes(&self, table: &str) -> Result<Vec<IndexInfo>> {
        self.info(table).await?;
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT i.relname::text, upper(am.amname::text), \
                        array(SELECT pg_get_indexdef(x.indexrelid, k, true) \
                              FROM generate_series(1, x.indnkeyatts::int) AS k) \
                 FROM pg_index x \
                 JOIN pg_class i ON i.oid = x.indexrelid \
                 JOIN pg_class t ON t.oid = x.indrelid \
                 JOIN pg_namespace n ON n.oid = t.relnamespace \
                 JOIN pg_am am ON am.oid = i.relam \
                 WHERE n.nspname = $1 AND t.relname = $2 AND NOT x.indisprimary \
                 ORDER BY 1",
                &[&self.ns_name, &sql::derived_name(table, "")],
            )
            .await
            .map_err(|e| map_err("list indexes", table, e))?;
        let total = self.count(table, None).await?;
        Ok(rows
            .iter()
            .map(|r| IndexInfo {
                name: r.get(0),
                kind: r.get(1),
                columns: r.get(2),
                // PostgreSQL updates its indexes with every write.
                indexed_rows: Some(total),
                unindexed_rows: Some(0),
            })
            .collect())
    }

    async fn table_stats(&self, table: &str) -> Result<TableStats> {
        self.info(table).await?;
        let client = self.client().await?;
        let row = client
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM {t}), \
                            pg_total_relation_size($2::text::regclass), \
                            (SELECT version FROM {c} WHERE name = $1)",
                    t = self.qualified(table),
                    c = self.catalog()
                ),
                &[&table, &self.qualified(table)],
            )
            .await
            .map_err(|e| map_err("stats", table, e))?;
        Ok(TableStats {
            rows: row.get::<_, i64>(0) as u64,
            version: row.get::<_, i64>(2) as u64,
            versions: 1,
            disk_bytes: row.get::<_, i64>(1) as u64,
            fragments: 1,
            indexes: self.list_indexes(table).await?,
        })
    }

    async fn version(&self, table: &str) -> Result<u64> {
        self.info(table).await?;
        let client = self.client().await?;
        let row = client
            .query_one(
                &format!("SELECT version FROM {} WHERE name = $1", self.catalog()),
                &[&table],
            )
            .await
            .map_err(|e| map_err("version", table, e))?;
        Ok(row.get::<_, i64>(0) as u64)
    }
}
