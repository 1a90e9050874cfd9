"""The Web Core HTTP API (FastAPI on uvicorn): one more door into the same core and database.

`create_app(settings)` builds the application; `forge-pool serve` runs it. Every refusal is
an RFC 9457 problem document (`application/problem+json`) whose `problems` name each field
path with the CLI's message; a failure of ours is a 500 problem without a trace.

Status codes: 200/201 success; 401 no, unknown or revoked key; 403 a key without the
endpoint's scope; 404 absent *or another organization's* (never 403: existence is not
revealed); 409 a request id reused for a different document, or a state that forbids
the action; 413 a body over the limit; 422 invalid input; 429 over the key's rate limit
(with Retry-After); 503 over the time limit.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import parse as parse_rate_limit
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from forge_pipeline.api import service
from forge_pipeline.api.keys import Principal, Scope, Unauthenticated, authenticate
from forge_pipeline.api.models import (REQUEST_BODY_SCHEMA, AgentRecord, DisputeBody, Estimate, Health, Payouts,
                                       ProblemDetail, Statement, Submitted, WorkloadPage, WorkloadStatus)
from forge_pipeline.assign.pool import Pool, load_pool
from forge_pipeline.intake.problems import Problem, RequestIdConflict, RequestInvalid
from forge_pipeline.intake.documents import load_document
from forge_pipeline.intake.limits import MAX_JSON_BYTES
from forge_pipeline.states import IllegalTransition
from forge_pipeline.storage.database import open_engine

log = logging.getLogger("forge_pipeline.api")
PROBLEM_MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True)
class ApiSettings:
    """Limits of one server. `rate_limit` is a `limits` expression per key ("100/second", "6000/minute")."""
    body_limit_bytes: int = MAX_JSON_BYTES
    rate_limit: str = "100/second"
    timeout_s: float = 30.0
    page_token_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @classmethod
    def from_environment(cls) -> ApiSettings:
        """FORGE_API_BODY_LIMIT_BYTES, FORGE_API_RATE_LIMIT, FORGE_API_TIMEOUT_S, FORGE_API_SECRET;
        RequestInvalid naming each bad one."""
        problems, values = [], {}
        for name, key, parse in (("FORGE_API_BODY_LIMIT_BYTES", "body_limit_bytes", int),
                                 ("FORGE_API_TIMEOUT_S", "timeout_s", float)):
            if name in os.environ:
                try:
                    values[key] = parse(os.environ[name])
                    if not 0 < values[key] < 1 << 40:
                        raise ValueError
                except ValueError:
                    problems.append(Problem(name, f"must be a positive number, got {os.environ[name]!r}"))
        if "FORGE_API_RATE_LIMIT" in os.environ:
            try:
                parse_rate_limit(os.environ["FORGE_API_RATE_LIMIT"])
                values["rate_limit"] = os.environ["FORGE_API_RATE_LIMIT"]
            except ValueError:
                problems.append(Problem("FORGE_API_RATE_LIMIT", "must read like 100/second or 6000/minute, "
                                                                f"got {os.environ['FORGE_API_RATE_LIMIT']!r}"))
        if os.environ.get("FORGE_API_SECRET"):
            values["page_token_secret"] = os.environ["FORGE_API_SECRET"].encode()
        if problems:
            raise RequestInvalid(problems)
        return cls(**values)


class Forbidden(PermissionError):
    pass


class RateLimited(Exception):
    def __init__(self, retry_after_s: int):
        self.retry_after_s = retry_after_s
        super().__init__(f"rate limit exceeded: retry after {retry_after_s} s")


class BodyTooLarge(Exception):
    """A chunked body grew past the limit while it was read."""


def too_large_detail(limit_bytes: int) -> str:
    return f"the body is larger than {limit_bytes} bytes"


def problem_response(request_path: str, status: int, title: str, detail: str,
                     problems: Sequence[Problem] = (), headers: dict | None = None) -> JSONResponse:
    """An RFC 9457 problem document (application/problem+json) listing `problems` by field path."""
    slug = title.lower().replace(" ", "-")
    body = ProblemDetail(type=f"urn:forge-pool:problem:{slug}", title=title, status=status, detail=detail,
                         instance=request_path, problems=[{"path": p.path, "message": p.message} for p in problems])
    return JSONResponse(body.model_dump(), status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _problem_content(description: str) -> dict:
    return {"description": description, "model": ProblemDetail,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}}}


PROBLEMS = {status: _problem_content(description) for status, description in (
    (401, "no, unknown or revoked API key"), (403, "the key lacks this endpoint's scope"),
    (404, "not found, or another organization's"), (413, "body over the size limit"),
    (422, "invalid input: every problem with its field path"), (429, "over the key's rate limit (Retry-After)"),
    (500, "an internal error (no details are disclosed)"), (503, "over the time limit"))}
# The request document of a submission or an estimate, read by `parse_document` (JSON or YAML).
REQUEST_BODY = {"requestBody": {"required": True, "content": {
    media_type: {"schema": REQUEST_BODY_SCHEMA} for media_type in ("application/json", "application/yaml")}}}
CONFLICT = {409: _problem_content("a request id reused for a different document, or a state that forbids it")}


class Limits:
    """Body size limit and time limit, as pure ASGI middleware (so they also cover reading the body)."""

    def __init__(self, app, settings: ApiSettings):
        self.app, self.settings = app, settings

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.settings.body_limit_bytes):
            return await self._refuse(scope, receive, send, 413, "Body too large")
        received, started = 0, False

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.settings.body_limit_bytes:
                raise BodyTooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            with anyio.fail_after(self.settings.timeout_s):
                await self.app(scope, limited_receive, tracking_send)
        except TimeoutError:
            if not started:
                await self._refuse(scope, receive, send, 503, "Timed out")

    async def _refuse(self, scope, receive, send, status: int, title: str):
        detail = (too_large_detail(self.settings.body_limit_bytes) if status == 413 else
                  f"the request took longer than {self.settings.timeout_s} s; a submission is stored whole or not "
                  "at all, so retrying it is safe")
        await problem_response(scope["path"], status, title, detail)(scope, receive, send)


def create_app(settings: ApiSettings | None = None, pool: Pool | None = None) -> FastAPI:
    """The application on this home's database (FORGE_DATABASE_URL) and Agent pool (FORGE_POOL_FILE)."""
    settings = settings or ApiSettings()
    engine = open_engine()
    pool = pool or load_pool()
    tokens = service.PageTokens(settings.page_token_secret)
    admissions = service.GroupAdmission(engine, pool)
    limiter = MovingWindowRateLimiter(MemoryStorage())
    rate = parse_rate_limit(settings.rate_limit)
    bearer = HTTPBearer(auto_error=False, description="an API key from `forge-pool keys create`")
    app = FastAPI(title="Forge Pool Web Core API", version="1", responses=PROBLEMS,
                  description="Submit, follow, estimate, dispute and export workloads; providers' payouts. "
                              "See docs/api.md.")

    def authorized(scope: Scope | None):
        def principal(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
            if credentials is None:
                raise Unauthenticated("an Authorization: Bearer API key is required")
            who = authenticate(engine, credentials.credentials)
            if not limiter.hit(rate, who.key_id):
                reset = limiter.get_window_stats(rate, who.key_id).reset_time
                raise RateLimited(max(1, math.ceil(reset - time.time())))
            if scope is not None and not who.allows(scope):
                raise Forbidden(f"this key lacks the {scope.value} scope")
            return who
        return principal

    def tenant(principal: Principal) -> str | None:
        """The organization a customer may see; None (every one) for an operator."""
        return None if principal.operator else principal.owner

    async def document_of(request: Request) -> object:
        return load_document(await request.body(), "(body)")

    @app.exception_handler(RequestInvalid)
    async def invalid(request: Request, error: RequestInvalid):
        return problem_response(request.url.path, 422, "Invalid request",
                                f"{len(error.problems)} problem(s); each is listed with its field path",
                                error.problems)

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(request: Request, error: RequestValidationError):
        problems = [Problem(".".join(str(part) for part in item["loc"]), item["msg"]) for item in error.errors()]
        return problem_response(request.url.path, 422, "Invalid request",
                                f"{len(problems)} problem(s); each is listed with its field path", problems)

    @app.exception_handler(RequestIdConflict)  # before its base class RequestInvalid (422) by the handlers' MRO lookup
    async def conflict(request: Request, error: RequestIdConflict):
        return problem_response(request.url.path, 409, "Conflict", "; ".join(str(problem) for problem in error.problems),
                                error.problems)

    @app.exception_handler(IllegalTransition)
    async def illegal(request: Request, error: IllegalTransition):
        return problem_response(request.url.path, 409, "Conflict", str(error))

    @app.exception_handler(service.NotFound)
    async def not_found(request: Request, error: service.NotFound):
        return problem_response(request.url.path, 404, "Not found", str(error))

    @app.exception_handler(Unauthenticated)
    async def unauthenticated(request: Request, error: Unauthenticated):
        return problem_response(request.url.path, 401, "Unauthenticated", str(error),
                                headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, error: Forbidden):
        return problem_response(request.url.path, 403, "Forbidden", str(error))

    @app.exception_handler(RateLimited)
    async def rate_limited(request: Request, error: RateLimited):
        return problem_response(request.url.path, 429, "Too many requests", str(error),
                                headers={"Retry-After": str(error.retry_after_s)})

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, error: BodyTooLarge):
        return problem_response(request.url.path, 413, "Body too large", too_large_detail(settings.body_limit_bytes))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        return problem_response(request.url.path, error.status_code, "Not found" if error.status_code == 404 else
                                "HTTP error", str(error.detail), headers=error.headers)

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception):
        reference = secrets.token_hex(6)
        log.error("internal error %s on %s %s", reference, request.method, request.url.path, exc_info=error)
        return problem_response(request.url.path, 500, "Internal error",
                                f"an internal error occurred; the server log has it under reference {reference}")

    app.add_middleware(Limits, settings=settings)

    @app.post("/v1/workloads", response_model=Submitted, status_code=201, responses={200: {"model": Submitted},
              **CONFLICT}, openapi_extra=REQUEST_BODY)
    async def submit_workload(request: Request, principal: Principal = Depends(authorized(Scope.SUBMIT))):
        """Store a workload request exactly as `forge-pool submit` does: 201 when new, 200 when the same
        document was already submitted under its request id, 409 when a different one was."""
        document = service.submission(await document_of(request), tenant(principal),
                                      request.headers.get("idempotency-key"))
        workload_id, created = await admissions.admit(document, tenant(principal))
        body = Submitted(workload_id=workload_id, request_id=document["request_id"], created=created)
        return JSONResponse(body.model_dump(), status_code=201 if created else 200,
                            headers={"Location": f"/v1/workloads/{workload_id}"})

    @app.post("/v1/estimates", response_model=Estimate, openapi_extra=REQUEST_BODY)
    async def estimate(request: Request, principal: Principal = Depends(authorized(Scope.SUBMIT))):
        """The planner's projected charge for a request; nothing is stored."""
        document = service.submission(await document_of(request), tenant(principal), None)
        return await run_in_threadpool(service.estimate, pool, document, tenant(principal))

    @app.get("/v1/workloads", response_model=WorkloadPage)
    def list_workloads(state: str | None = None, cycle: str | None = Query(None, description="YYYY-MM-DD"),
                       page_token: str | None = None, limit: int = 100,
                       principal: Principal = Depends(authorized(Scope.READ))):
        """The organization's workloads, oldest submission first; `cycle` filters by the billing cycle of
        submission. A page token works only for the listing (organization and filters) that issued it."""
        return service.workload_page(engine, tokens, tenant(principal), state, cycle, page_token, limit)

    @app.get("/v1/workloads/{workload_id}", response_model=WorkloadStatus)
    def workload(workload_id: str, principal: Principal = Depends(authorized(Scope.READ))):
        """The `forge-pool status --json` object."""
        return service.status_of(engine, workload_id, tenant(principal))

    @app.post("/v1/workloads/{workload_id}/dispute", response_model=WorkloadStatus, responses=CONFLICT)
    def dispute(workload_id: str, body: DisputeBody, principal: Principal = Depends(authorized(Scope.DISPUTE))):
        """Hold a Finalized workload out of settlement (as `forge-pool dispute`); 409 in any other state."""
        return service.dispute_workload(engine, workload_id, tenant(principal), body.reason)

    @app.get("/v1/workloads/{workload_id}/evidence", response_model=dict)
    def evidence(workload_id: str, principal: Principal = Depends(authorized(Scope.READ))):
        """The evidence bundle's manifest (DESIGN §3.6); 404 until the workload is finalized."""
        return service.evidence_manifest(engine, workload_id, tenant(principal))

    @app.get("/v1/statements/{cycle}", response_model=Statement)
    def statement(cycle: str, principal: Principal = Depends(authorized(Scope.READ))):
        """The credit statement of the billing cycle holding the date `cycle`, net of refunds."""
        return service.credit_statement(engine, cycle, tenant(principal))

    @app.get("/v1/exports/{cycle}", responses={200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}},
                                                     "description": "the statement lines"}})
    def export(cycle: str, format: str = Query("csv", description="csv | parquet"),
               principal: Principal = Depends(authorized(Scope.EXPORT))):
        """The cycle's statement lines, as `forge-pool export --org` writes them, streamed."""
        chunks = service.export_chunks(engine, cycle, tenant(principal), format)
        media_type = "text/csv" if format == "csv" else "application/vnd.apache.parquet"
        return StreamingResponse(chunks, media_type=media_type, headers={
            "Content-Disposition": f'attachment; filename="statement-{cycle}.{format}"'})

    @app.get("/v1/payouts/{cycle}", response_model=Payouts)
    def payouts(cycle: str, principal: Principal = Depends(authorized(Scope.PAYOUTS))):
        """A provider's payouts in the cycle, net of refunds (an operator sees every provider's)."""
        return service.provider_payouts(engine, cycle, None if principal.operator else principal.owner)

    @app.get("/v1/agents", response_model=list[AgentRecord])
    def agents(principal: Principal = Depends(authorized(Scope.PAYOUTS))):
        """A provider's Agents with their reliability records (an operator sees every Agent)."""
        return service.agent_reliability(engine, pool, None if principal.operator else principal.owner)

    @app.get("/healthz", response_model=Health)
    def healthz(principal: Principal = Depends(authorized(None))):
        """Alive, for any valid key."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=Health)
    def readyz(principal: Principal = Depends(authorized(None))):
        """Ready: the database answers (any valid key)."""
        with engine.connect() as connection:
            connection.execute(select(1)).scalar_one()
        return {"status": "ready"}

    return app
