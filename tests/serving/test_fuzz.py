"""Property-based fuzzing of the OpenAPI schema (schemathesis): no input makes the server answer 5xx.

Every operation gets a bounded number of generated requests, so this part of CI stays short.
"""

from __future__ import annotations

from pathlib import Path

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from thaw.encoders import HashEncoder
from thaw.serving.app import create_app
from thaw.serving.config import ExplorationConfig
from tests.serving.conftest import CATALOGUE, serve_config

MAX_EXAMPLES = 30


def test_fuzzed_requests_never_get_a_server_error(tmp_path: Path) -> None:
    config = serve_config(tmp_path, exploration=ExplorationConfig(share=0.2))
    app = create_app(config, encoder=HashEncoder(dim=16))
    with TestClient(app) as client:  # runs the lifespan; schemathesis then calls the started app
        client.post("/items", json=CATALOGUE)
        client.post("/users", json=[{"id": "u"}, {"id": "0"}])
        client.post("/events", json={"user": "u", "item": "space-1", "type": "click"})
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 14
        for operation in operations:
            if operation.path == "/admin/train":
                continue  # starts real training; covered by test_models with a stand-in trainer

            @given(case=operation.as_strategy())
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
                database=None,
            )
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(checks=[not_a_server_error])

            check()
