"""The OpenAPI document is a contract: it changes only on purpose. The snapshot was taken before
cloud/ moved into floors and must still match; after a deliberate API change, write it anew with

    .venv/bin/python -m tests.cloud.test_openapi_snapshot

and review the diff like any other change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from cloud.http.app import create_app
from cloud.settings import Settings
from tests.cloud.conftest import MASTER_KEY

SNAPSHOT = Path(__file__).with_name("openapi.snapshot.json")


def current() -> dict[str, Any]:
    app = create_app(Settings(db_url="sqlite://", admin_key="a" * 40, master_key=MASTER_KEY),
                     engine=create_engine("sqlite://"))
    doc: dict[str, Any] = json.loads(json.dumps(app.openapi()))
    return doc


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(path, method): op.get("operationId", "") for path, item in doc["paths"].items()
            for method, op in item.items()}


def test_paths_methods_operation_ids_and_schemas_are_unchanged() -> None:
    doc, snap = current(), json.loads(SNAPSHOT.read_text())
    assert operations(doc) == operations(snap)
    assert doc["components"]["schemas"] == snap["components"]["schemas"]
    assert doc == snap  # descriptions, parameters and responses too


def test_the_comparison_sees_a_change() -> None:
    doc = current()
    doc["paths"]["/healthz"]["get"]["operationId"] = "renamed"
    assert operations(doc) != operations(json.loads(SNAPSHOT.read_text()))


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(current(), indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"wrote {SNAPSHOT}")
