"""Pinecone data-plane test double (a stand-in for an index host in tests).

Follows Pinecone's data-plane API (db_data 2025-10 OpenAPI):
  POST /describe_index_stats  {} -> {"namespaces":{ns:{"vectorCount"}},"dimension","indexFullness",
                                     "totalVectorCount","metric","vectorType"}
  GET  /vectors/list?namespace=&prefix=&limit=&paginationToken=
        -> {"vectors":[{"id"}],"pagination":{"next":token}?,"namespace","usage":{"readUnits"}}
        ids sorted bytewise, limit default 100 (1..100), no "pagination" on the last page.
  GET  /vectors/fetch?ids=a&ids=b&namespace=   (at most 1000 ids)
        -> {"vectors":{id:{"id","values","sparseValues"?,"metadata"?}},"namespace","usage"}
        missing ids are simply absent.
The default namespace is "" (also addressed as "__default__").
Errors: {"code":int,"message":"...","details":[]}; 401 body is the text "Unauthorized".
Auth: `Api-Key: <key>` when the fixture sets "api_key".

Fixture: {"api_key", "dimension", "metric"?, "snake_case": bool (spell response fields
in snake_case: vector_count, total_vector_count, index_fullness, sparse_values, vector_type),
"namespaces": {ns: [{"id","values"?,"sparseValues"?,"metadata"?}]}, "faults": [...]}.

Usage: python3 pinecone_double.py FIXTURE.json   (prints "PORT <n>")
"""

import base64
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from double_server import Double, serve  # noqa: E402


def error(status, code, message):
    return status, {"code": code, "message": message, "details": []}, {}


class Pinecone(Double):
    def authorized(self, headers):
        key = self.fixture.get("api_key")
        return not key or headers.get("Api-Key") == key

    def unauthorized(self):
        return 401, "Unauthorized", {"X-Raw-Text": "1"}

    def spell(self, camel, snake):
        return snake if self.fixture.get("snake_case") else camel

    def namespace(self, query):
        ns = query.get("namespace", [""])[0]
        return "" if ns == "__default__" else ns

    def route(self, method, path, query, body, headers):
        spaces = self.fixture["namespaces"]
        if method == "POST" and path == "/describe_index_stats":
            total = sum(len(v) for v in spaces.values())
            out = {
                "namespaces": {ns: {self.spell("vectorCount", "vector_count"): len(v)} for ns, v in spaces.items()},
                "dimension": self.fixture["dimension"],
                self.spell("indexFullness", "index_fullness"): 0.0,
                self.spell("totalVectorCount", "total_vector_count"): total,
                self.spell("vectorType", "vector_type"): "dense",
            }
            if self.fixture.get("metric"):
                out["metric"] = self.fixture["metric"]
            return 200, out, {}
        if method == "GET" and path == "/vectors/list":
            ns = self.namespace(query)
            if ns not in spaces:
                return error(404, 5, "Namespace not found")
            try:
                limit = int(query.get("limit", ["100"])[0])
            except ValueError:
                return error(400, 3, "limit must be an integer")
            if not 1 <= limit <= 100:
                return error(400, 3, "Invalid request: limit must be between 1 and 100")
            prefix = query.get("prefix", [""])[0]
            ids = sorted((r["id"] for r in spaces[ns] if r["id"].startswith(prefix)), key=lambda s: s.encode())
            start = 0
            token = query.get("paginationToken", [None])[0]
            if token:
                try:
                    last = base64.b64decode(token.encode()).decode()
                except Exception:
                    return error(400, 3, "Invalid pagination token")
                start = len([i for i in ids if i.encode() <= last.encode()])
            page = ids[start:start + limit]
            out = {"vectors": [{"id": i} for i in page], "namespace": ns,
                   "usage": {self.spell("readUnits", "read_units"): 1}}
            if start + limit < len(ids):
                out["pagination"] = {"next": base64.b64encode(page[-1].encode()).decode()}
            return 200, out, {}
        if method == "GET" and path == "/vectors/fetch":
            ns = self.namespace(query)
            ids = query.get("ids", [])
            if not ids:
                return error(400, 3, "ids must be provided")
            if len(ids) > 1000:
                return error(400, 3, "Cannot fetch more than 1000 ids at once")
            by_id = {r["id"]: r for r in spaces.get(ns, [])}
            vectors = {}
            for i in ids:
                r = by_id.get(i)
                if r is None:
                    continue
                v = {"id": i}
                if "values" in r:
                    v["values"] = r["values"]
                if "sparseValues" in r:
                    v[self.spell("sparseValues", "sparse_values")] = r["sparseValues"]
                if "metadata" in r:
                    v["metadata"] = r["metadata"]
                vectors[i] = v
            return 200, {"vectors": vectors, "namespace": ns,
                         "usage": {self.spell("readUnits", "read_units"): 1}}, {}
        return error(404, 5, "Not found: %s %s" % (method, path))


if __name__ == "__main__":
    serve(Pinecone)
