"""/api/v1/openapi.json documents every API route and is a valid OpenAPI 3.1 document."""

from __future__ import annotations

import re

from openapi_spec_validator import validate


def test_openapi_documents_every_route_and_validates(app, client):
    doc = client.get("/api/v1/openapi.json").json
    validate(doc)
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert (path, method) in documented
    render = doc["paths"]["/api/v1/renders"]["post"]
    assert render["security"] == [{"bearer": []}]
    body = render["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["avatar_id", "script"]
    assert "security" not in doc["paths"]["/api/v1/verify"]["post"]  # public
