"""Qdrant REST test double (a stand-in for a real Qdrant server in tests).

Follows Qdrant's OpenAPI (docs/redoc/master/openapi.json):
  GET  /collections                         -> {"result":{"collections":[{"name"}]},"status":"ok","time"}
  GET  /collections/{name}                  -> {"result": CollectionInfo, "status":"ok","time"}
  POST /collections/{name}/points/scroll    -> {"result":{"points":[Record],"next_page_offset":id|null},...}
Scroll body: limit (default 10, >= 1), offset (a point id; points sorted by id),
with_payload (default true; bool or list of keys), with_vector / with_vectors
(default false; bool or list of vector names). next_page_offset is the id of
the first point after the page, null on the last page.
Errors: {"status":{"error":"..."},"time":...}. Auth: `api-key: <key>` or
`Authorization: Bearer <key>` when the fixture sets "api_key".

Fixture: {"api_key": str|null, "collections": {name: {"vectors": VectorParams or
{name: VectorParams}, "sparse_vectors": {...}?, "points": [{"id", "vector", "payload"}]}},
"faults": [...]} (see double_server.py).

Usage: python3 qdrant_double.py FIXTURE.json   (prints "PORT <n>")
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from double_server import Double, serve  # noqa: E402


def ok(result):
    return 200, {"result": result, "status": "ok", "time": 0.0001}, {}


def err(status, message):
    return status, {"status": {"error": message}, "time": 0.0001}, {}


def sort_key(point_id):
    # Fixtures keep to one id type per collection; ints sort numerically, UUIDs as strings.
    return (0, point_id, "") if isinstance(point_id, int) else (1, 0, str(point_id))


class Qdrant(Double):
    def authorized(self, headers):
        key = self.fixture.get("api_key")
        if not key:
            return True
        return headers.get("api-key") == key or headers.get("Authorization") == "Bearer " + key

    def unauthorized(self):
        return 401, {"status": {"error": "Must provide an API key or an Authorization bearer token"}, "time": 0.0}, {}

    def route(self, method, path, query, body, headers):
        parts = [p for p in path.split("/") if p]
        colls = self.fixture["collections"]
        if method == "GET" and parts == ["collections"]:
            return ok({"collections": [{"name": n} for n in colls]})
        if len(parts) >= 2 and parts[0] == "collections":
            name = parts[1]
            if name not in colls:
                return err(404, "Not found: Collection `%s` doesn't exist!" % name)
            coll = colls[name]
            if method == "GET" and len(parts) == 2:
                return ok(self.info(coll))
            if method == "POST" and parts[2:] == ["points", "scroll"]:
                return self.scroll(coll, body or {})
        return err(404, "Not found: %s %s" % (method, path))

    def info(self, coll):
        params = {"vectors": coll["vectors"], "shard_number": 1, "replication_factor": 1,
                  "write_consistency_factor": 1, "on_disk_payload": True}
        if coll.get("sparse_vectors"):
            params["sparse_vectors"] = coll["sparse_vectors"]
        return {
            "status": "green", "optimizer_status": "ok", "indexed_vectors_count": 0,
            "points_count": len(coll["points"]), "segments_count": 2,
            "config": {"params": params,
                       "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000},
                       "optimizer_config": {}, "wal_config": {}, "quantization_config": None},
            "payload_schema": {},
        }

    def scroll(self, coll, body):
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or limit < 1:
            return err(422, "Validation error in JSON body: [limit: value %r invalid, must be 1 or larger]" % (limit,))
        if body.get("order_by") is not None:
            return err(400, "this double does not implement order_by")
        with_vector = body.get("with_vector", body.get("with_vectors", False))
        with_payload = body.get("with_payload", True)
        points = sorted(coll["points"], key=lambda p: sort_key(p["id"]))
        offset = body.get("offset")
        start = 0
        if offset is not None:
            start = len(points)
            for i, p in enumerate(points):
                if sort_key(p["id"]) >= sort_key(offset):
                    start = i
                    break
        page = points[start:start + limit]
        after = points[start + limit]["id"] if start + limit < len(points) else None
        out = []
        for p in page:
            rec = {"id": p["id"], "payload": None, "vector": None}
            if with_payload is True:
                rec["payload"] = p.get("payload") or {}
            elif isinstance(with_payload, list):
                rec["payload"] = {k: v for k, v in (p.get("payload") or {}).items() if k in with_payload}
            v = p.get("vector")
            if with_vector is True:
                rec["vector"] = v
            elif isinstance(with_vector, list):
                if not isinstance(v, dict):
                    return err(400, "Wrong input: Vector params for %s are not specified in config" % with_vector[0])
                rec["vector"] = {k: x for k, x in v.items() if k in with_vector}
            out.append(rec)
        return ok({"points": out, "next_page_offset": after})


if __name__ == "__main__":
    serve(Qdrant)
