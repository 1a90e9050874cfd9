"""Schemathesis against the served OpenAPI document: for generated requests to every operation, no 5xx, and
every response conforms to the schema (status code, content type, headers, body)."""

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from tests.api.conftest import bearer

EXAMPLES_PER_OPERATION = 25  # bounded, so CI runs it on every change (~300 requests)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


def test_every_operation_conforms_to_its_schema(world):
    """Generated requests to every operation, with an operator key and with a customer key: no 5xx, and every
    response conforms to the schema."""
    served = schemathesis.openapi.from_asgi("/openapi.json", world.app)
    operations = [result.ok() for result in served.get_all_operations()]
    assert len(operations) == 12

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        def conforms(case):
            case.call_and_validate(headers=bearer(world.operator_key), checks=CHECKS)
            case.call_and_validate(headers=world.tenants["acme"].headers, checks=CHECKS)

        conforms()


def test_the_served_schema_documents_every_route_with_problem_responses(world):
    """/openapi.json lists each endpoint the issue names, the Bearer scheme, and RFC 9457 problem responses."""
    document = world.client.get("/openapi.json").json()
    assert set(document["paths"]) == {
        "/v1/workloads", "/v1/estimates", "/v1/workloads/{workload_id}", "/v1/workloads/{workload_id}/dispute",
        "/v1/workloads/{workload_id}/evidence", "/v1/statements/{cycle}", "/v1/exports/{cycle}",
        "/v1/payouts/{cycle}", "/v1/agents", "/healthz", "/readyz"}
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    submit = document["paths"]["/v1/workloads"]["post"]["responses"]
    assert {"200", "201", "401", "403", "409", "413", "422", "429"} <= set(submit)
    assert "application/problem+json" in submit["422"]["content"]
