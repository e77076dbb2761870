"""schemathesis against the app's own OpenAPI schema, over real HTTP: no 5xx, and every
response matches the schema (status code documented, body valid). A bounded number of
examples per operation, so CI runs it."""

from __future__ import annotations

import schemathesis
from conftest import TOKEN, Api
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

EXAMPLES = 25  # per operation
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def test_the_api_keeps_its_own_schema(api: Api) -> None:
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 17
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)

        check()
