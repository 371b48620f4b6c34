"""Weaviate REST test double (a stand-in for a real Weaviate server in tests).

Follows Weaviate's REST API (openapi-specs/schema.json) and cursor API:
  GET  /v1/schema                        -> {"classes":[Class]}
  GET  /v1/schema/{class}/tenants        -> [{"name","activityStatus"}]
  GET  /v1/objects?class=C&limit=&after=&include=vector[&tenant=t]
        -> {"objects":[{"class","id","properties","creationTimeUnix","lastUpdateTimeUnix",
                        "vector"?,"vectors"?,"tenant"?}],"deprecations":null,"totalResults":n}
        objects in UUID order, after="" starts, default limit 25; `after` cannot be
        combined with offset; multi-tenant classes need `tenant`; vectors only with include=vector.
  POST /v1/graphql  {"query":"{ Aggregate { C(tenant: \"t\") { meta { count } } } }"}
        -> {"data":{"Aggregate":{"C":[{"meta":{"count":n}}]}}}
Errors: {"error":[{"message":"..."}]}. Auth: `Authorization: Bearer <key>` when the
fixture sets "api_key" (401 otherwise).

Fixture: {"api_key", "classes": [Class], "tenants": {class: [{"name","activityStatus"}]},
"objects": {class: [Object]} or, for multi-tenant classes, {class: {tenant: [Object]}},
"faults": [...]}.

Usage: python3 weaviate_double.py FIXTURE.json   (prints "PORT <n>")
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from double_server import Double, serve  # noqa: E402


def error(status, message):
    return status, {"error": [{"message": message}]}, {}


class Weaviate(Double):
    def authorized(self, headers):
        key = self.fixture.get("api_key")
        return not key or headers.get("Authorization") == "Bearer " + key

    def unauthorized(self):
        return 401, {"code": 401, "message": "anonymous access not enabled, please provide an auth scheme such as OIDC"}, {}

    def cls(self, name):
        for c in self.fixture["classes"]:
            if c["class"] == name:
                return c
        return None

    def multi_tenant(self, c):
        return bool(c.get("multiTenancyConfig", {}).get("enabled"))

    def objects_of(self, c, tenant):
        objs = self.fixture["objects"].get(c["class"], [])
        if self.multi_tenant(c):
            return objs.get(tenant, [])
        return objs

    def route(self, method, path, query, body, headers):
        parts = [p for p in path.split("/") if p]
        if method == "GET" and parts == ["v1", "schema"]:
            return 200, {"classes": self.fixture["classes"]}, {}
        if method == "GET" and len(parts) == 4 and parts[:2] == ["v1", "schema"] and parts[3] == "tenants":
            c = self.cls(parts[2])
            if c is None:
                return error(404, "class %s not found" % parts[2])
            if not self.multi_tenant(c):
                return error(422, "multi-tenancy is not enabled for class '%s'" % parts[2])
            return 200, self.fixture.get("tenants", {}).get(parts[2], []), {}
        if method == "GET" and parts == ["v1", "objects"]:
            return self.objects(query)
        if method == "POST" and parts == ["v1", "graphql"]:
            return self.graphql(body or {})
        return error(404, "no route for %s %s" % (method, path))

    def objects(self, query):
        name = query.get("class", [None])[0]
        c = self.cls(name) if name else None
        if c is None:
            return error(422, "class %s not found in schema" % name)
        if "after" in query and ("offset" in query or "sort" in query or "where" in query):
            return error(422, "cursor api: invalid 'after' parameter: offset, sort and where cannot be combined with after")
        tenant = query.get("tenant", [None])[0]
        if self.multi_tenant(c) and not tenant:
            return error(422, "has multi-tenancy enabled, but request was without tenant")
        if not self.multi_tenant(c) and tenant:
            return error(422, "has multi-tenancy disabled, but request was with tenant")
        if self.multi_tenant(c):
            status = {t["name"]: t.get("activityStatus", "HOT") for t in self.fixture.get("tenants", {}).get(name, [])}
            if tenant not in status:
                return error(422, "tenant not found: '%s'" % tenant)
        limit = int(query.get("limit", ["25"])[0])
        after = query.get("after", [""])[0]
        include = query.get("include", [""])[0].split(",")
        objs = sorted(self.objects_of(c, tenant), key=lambda o: o["id"])
        page = [o for o in objs if o["id"] > after][:limit] if after else objs[:limit]
        out = []
        for o in page:
            x = {"class": name, "id": o["id"], "properties": o.get("properties", {}),
                 "creationTimeUnix": 1700000000000, "lastUpdateTimeUnix": 1700000000000}
            if tenant:
                x["tenant"] = tenant
            if "vector" in include:
                if "vector" in o:
                    x["vector"] = o["vector"]
                if "vectors" in o:
                    x["vectors"] = o["vectors"]
            out.append(x)
        return 200, {"objects": out, "deprecations": None, "totalResults": len(out)}, {}

    def graphql(self, body):
        q = body.get("query", "")
        m = re.search(r'Aggregate\s*\{\s*(\w+)\s*(?:\(\s*tenant\s*:\s*"([^"]*)"\s*\))?\s*\{\s*meta\s*\{\s*count', q)
        if not m:
            return 200, {"data": None, "errors": [{"message": "this double answers Aggregate meta count only"}]}, {}
        c = self.cls(m.group(1))
        if c is None:
            return 200, {"data": None, "errors": [{"message": "Cannot query field \"%s\" on type \"AggregateObjectsObj\"." % m.group(1)}]}, {}
        n = len(self.objects_of(c, m.group(2)))
        return 200, {"data": {"Aggregate": {m.group(1): [{"meta": {"count": n}}]}}}, {}


if __name__ == "__main__":
    serve(Weaviate)
