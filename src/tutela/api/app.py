"""The HTTPS API's routes (docs/api.md): everything the CLI does, under /api/v1, each
request checked by tutela.apiauth.roles and passed to the local tutelad over its control
socket; errors as JSON naming the field and the fix."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from tutela.api import models
from tutela.api.feed import Feed
from tutela.apiauth.auth import (
    STATE_CHANGING,
    AuthError,
    LoginLimiter,
    Session,
    Sessions,
    all_tokens,
    check_token,
    csrf_ok,
    group_names,
    pam_login,
    principal_of,
)
from tutela.apiauth.roles import Action, Principal, decide
from tutela.cli.client import DaemonError, NotRunning, Unanswered, call
from tutela.journal.events import Event, select
from tutela.model.config import ClusterConfig

PREFIX = "/api/v1"
SESSION_COOKIE = "tutela_session"
CSRF_HEADER = "X-CSRF-Token"
HEARTBEAT = 15.0
"""Seconds between the event stream's keep-alive comments."""
READ_SLOTS = 4
"""Reads (status, events, why, export) this process has tutelad answer at once: however
many clients ask, tutelad's event loop gets at most this many of its requests."""
READ_REUSE = 0.5
"""Seconds a read's answer is given again to the clients that ask the same meanwhile."""
KITS_REUSE = 60.0
"""Seconds the kit list is given again: reading every OCF agent's meta-data takes seconds."""
log = logging.getLogger("tutela.api")


class ApiError(Exception):
    """An answer other than 2xx: {"error": {kind, message, problems: [{field, message,
    fix}]}}."""

    def __init__(self, status: int, kind: str, message: str,
                 problems: list[dict[str, str]] | None = None, fix: str = "",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind = status, kind
        self.problems = problems or []
        self.fix = fix
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"kind": self.kind, "message": str(self), "problems":
                                self.problems}
        if self.fix:
            body["fix"] = self.fix
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else {}
        return JSONResponse({"error": body}, self.status, headers={**headers, **self.headers})


@dataclass
class Context:
    """What the routes share in one API process."""

    state_dir: Path
    api_dir: Path
    login: Callable[[str, str], bool] = pam_login
    sessions: Sessions = field(default_factory=Sessions)
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    feed: Feed | None = None
    reads: Reads = field(default_factory=lambda: Reads(READ_SLOTS, READ_REUSE))
    kits: Reads = field(default_factory=lambda: Reads(1, KITS_REUSE))

    def config(self) -> ClusterConfig:
        from tutela.doctor.probes import stored_config

        stored = stored_config(self.state_dir)
        if stored is None:
            raise ApiError(503, "not-initialised", f"this node has no configuration in "
                           f"{self.state_dir}", fix="tutela init, or tutela join")
        return stored[1]


class Reads:
    """The reads this process passes to tutelad: at most `slots` at once, and an answer
    younger than `reuse` seconds given again for the same question."""

    def __init__(self, slots: int, reuse: float) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self._reuse = reuse
        self._answers: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def answer(self, question: Hashable, ask: Callable[[], Any]) -> Any:
        with self._slots:  # a question that waited may find its answer made meanwhile
            with self._lock:
                found = self._answers.get(question)
            if found is not None and time.monotonic() - found[0] < self._reuse:
                return found[1]
            value = ask()
            with self._lock:
                self._answers = {q: a for q, a in self._answers.items()
                                 if time.monotonic() - a[0] < self._reuse}
                self._answers[question] = (time.monotonic(), value)
            return value


@dataclass(frozen=True)
class Caller:
    principal: Principal
    session: Session | None


# --- authentication, permission, the daemon ----------------------------------------------

def caller_of(context: Context, request: Request) -> Caller:
    """Who sent `request` (bearer token or session cookie), its CSRF token checked."""
    header = request.headers.get("authorization", "")
    now = time.time()
    if header.lower().startswith("bearer "):
        principal = check_token(all_tokens(context.config(), context.api_dir),
                                header[7:].strip(), now)
        caller = Caller(principal, None)
    else:
        key = request.cookies.get(SESSION_COOKIE)
        session = context.sessions.find(key, now) if key else None
        if session is None:
            raise AuthError(401, "not logged in, or the session expired",
                            f"POST {PREFIX}/login with user and password, or send "
                            "Authorization: Bearer TOKEN")
        if not csrf_ok(request.method, True, request.headers.get(CSRF_HEADER), session):
            raise AuthError(403, f"a state-changing request needs the {CSRF_HEADER} header",
                            f"send the csrf_token the login (or GET {PREFIX}/me) returned "
                            f"as the {CSRF_HEADER} header")
        caller = Caller(session.principal, session)
    request.state.principal = caller.principal
    return caller


def allow(caller: Caller, action: Action, hierarchy: str | None = None) -> None:
    decision = decide(caller.principal, action, hierarchy)
    if not decision.allowed:
        raise ApiError(403, "forbidden", decision.reason,
                       fix="ask an administrator for a role that allows it")


def daemon(context: Context, op: str, timeout: float | None = None, **args: Any) -> Any:
    """tutelad's answer to `op`, or an ApiError that says what happened."""
    try:
        return call(context.state_dir, op, timeout, **args)
    except NotRunning as error:
        raise ApiError(503, "not-running", str(error), fix="tutela start") from None
    except Unanswered as error:
        raise ApiError(504, "unanswered", str(error), fix=f"GET {PREFIX}/status") from None
    except DaemonError as error:
        status = {"config": 422, "request": 422, "switchover": 409, "operation": 409,
                  "system": 503}.get(error.kind, 500)
        raise ApiError(status, error.kind, str(error), error.problems) from None


def root_of(context: Context, tag: str, field_name: str = "tag") -> str:
    """The root of the hierarchy that holds `tag`; 404 naming the field if none does."""
    from tutela.model.hierarchy import build_hierarchies

    config = context.config()
    for hierarchy in build_hierarchies(config.resources):
        if tag in hierarchy.members:
            return hierarchy.root
    raise ApiError(404, "not-found", f"no resource {tag!r} in the configuration",
                   [{"field": field_name, "message": f"no resource {tag!r}",
                     "fix": f"GET {PREFIX}/status lists the resources"}])


# --- the application ---------------------------------------------------------------------

def create_app(context: Context) -> FastAPI:
    app = FastAPI(title="tutela", version="1", docs_url=f"{PREFIX}/docs",
                  openapi_url=f"{PREFIX}/openapi.json", redoc_url=None,
                  description="The HTTPS API of a tutela cluster node (docs/api.md). "
                              "Any node answers for the whole cluster.")
    app.state.context = context
    _errors(app)
    _audit(app, context)
    _account_routes(app, context)
    _read_routes(app, context)
    _action_routes(app, context)
    _config_routes(app, context)
    _gui(app)
    return app


def _errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return error.response()

    @app.exception_handler(AuthError)
    async def auth_error(_: Request, error: AuthError) -> JSONResponse:
        kind = "unauthenticated" if error.status == 401 else "forbidden"
        return ApiError(error.status, kind, str(error), fix=error.fix).response()

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [{"field": ".".join(str(p) for p in e["loc"] if p != "body"),
                     "message": e["msg"], "fix": _fix_of(e)} for e in error.errors()]
        return ApiError(422, "request", "; ".join(f"{p['field']}: {p['message']}"
                                                  for p in problems), problems).response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        fix = f"see {PREFIX}/docs" if error.status_code in (404, 405) else ""
        return ApiError(error.status_code, "request", f"{request.method} {request.url.path}: "
                        f"{error.detail}", fix=fix).response()


def _fix_of(error: Any) -> str:
    if error["type"] == "missing":
        return "add it"
    if error["type"] == "extra_forbidden":
        return "remove it"
    return "correct it (see the OpenAPI description)"


def _audit(app: FastAPI, context: Context) -> None:
    """Record every state-changing request whose sender is known in the event journal."""
    skip = {f"{PREFIX}/login", f"{PREFIX}/logout"}

    @app.middleware("http")
    async def audited(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                      ) -> Response:
        response = await call_next(request)
        principal: Principal | None = getattr(request.state, "principal", None)
        if (request.method in STATE_CHANGING and principal is not None
                and request.url.path not in skip
                and not getattr(request.state, "audited", False)):
            await run_in_threadpool(audit, context, request, principal, response.status_code)
        return response


def audit(context: Context, request: Request, principal: Principal, status: int,
          what: str = "") -> None:
    """Record a state-changing request in the event journal (api.request)."""
    what = what or f"{request.method} {request.url.path} -> {status}"
    try:
        call(context.state_dir, "api.audit", 10.0, user=principal.name, role=principal.role,
             method=request.method, path=request.url.path, status=status,
             address=request.client.host if request.client else "", what=what)
    except (DaemonError, OSError) as error:
        log.error("api: could not record %s in the event journal: %s", what, error)


CallerOf = Callable[[Request], Caller]


def _caller_dependency(context: Context) -> Any:
    def dependency(request: Request) -> Caller:
        return caller_of(context, request)
    return Depends(dependency)


def _account_routes(app: FastAPI, context: Context) -> None:
    who = _caller_dependency(context)

    @app.post(f"{PREFIX}/login", tags=["account"])
    def login(body: models.Login, request: Request, response: Response) -> dict[str, Any]:
        """Log in with a system user's password (PAM); sets the session cookie and returns
        the CSRF token to send with state-changing requests."""
        address = request.client.host if request.client else ""
        keys = [f"address:{address}", f"user:{body.user}"]
        now = time.time()
        wait = context.limiter.retry_after(keys, now)
        if wait > 0:
            raise ApiError(429, "rate-limited", f"too many failed logins; try again in "
                           f"{math.ceil(wait)} s", fix="wait, then log in with the right password",
                           headers={"Retry-After": str(math.ceil(wait))})
        if not context.login(body.user, body.password):
            context.limiter.failed(keys, time.time())
            raise AuthError(401, "user or password not accepted",
                            "log in as a system user of this node with its password")
        config = context.config()
        principal = principal_of(body.user, config.users, config.settings.api.groups,
                                 group_names(body.user))
        lifetime = config.settings.api.session_timeout
        key, session = context.sessions.open(principal, now, lifetime)
        response.set_cookie(SESSION_COOKIE, key, max_age=int(lifetime), path="/",
                            secure=True, httponly=True, samesite="strict")
        return _me(principal, session)

    @app.post(f"{PREFIX}/logout", tags=["account"])
    def logout(request: Request, response: Response, caller: Caller = who
               ) -> dict[str, Any]:
        """End this session."""
        key = request.cookies.get(SESSION_COOKIE)
        if key:
            context.sessions.close(key)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return {"user": caller.principal.name}

    @app.get(f"{PREFIX}/me", tags=["account"])
    def me(caller: Caller = who) -> dict[str, Any]:
        """Who is logged in (or whose token this is), the role and its limit, and what it
        may do."""
        return _me(caller.principal, caller.session)


def _me(principal: Principal, session: Session | None) -> dict[str, Any]:
    may = {action.value: decide(principal, action, None).allowed
           or (bool(principal.hierarchies) and decide(
               principal, action, next(iter(principal.hierarchies))).allowed)
           for action in Action}
    return {"user": principal.name, "role": principal.role,
            "hierarchies": sorted(principal.hierarchies), "may": may,
            "csrf_token": session.csrf if session else None,
            "expires": datetime.datetime.fromtimestamp(session.expires, datetime.UTC)
            .isoformat(timespec="seconds") if session else None}


def _read_routes(app: FastAPI, context: Context) -> None:
    who = _caller_dependency(context)

    @app.get(f"{PREFIX}/status", tags=["read"])
    def status(caller: Caller = who) -> dict[str, Any]:
        """The cluster as this node sees it (tutela status --json)."""
        allow(caller, Action.READ)
        return _read(context, "status")

    @app.get(f"{PREFIX}/events", tags=["read"])
    def events(caller: Caller = who, hierarchy: str | None = None, since: str | None = None,
               limit: Annotated[int | None, Query(ge=1, le=100_000)] = None) -> dict[str, Any]:
        """Every reachable node's journal records, merged by time (tutela events --json);
        since: 90s, 10m, 2h, 1d or an ISO time."""
        allow(caller, Action.READ)
        from tutela.cli.events import gather

        moment = _since(since)
        gathered = context.reads.answer(("events", hierarchy, moment, limit), lambda: gather(
            context.state_dir, hierarchy, moment, limit))
        return {"events": [e.to_json() for e in gathered.events], "notes": gathered.notes,
                "local_only": gathered.local_only}

    @app.get(f"{PREFIX}/events/stream", tags=["read"],
             response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}}}})
    async def stream(request: Request, caller: Caller = who,
                     hierarchy: str | None = None) -> StreamingResponse:
        """Server-sent events: each new journal record of any reachable node as one
        `event: record` whose data is the record's JSON; a comment every 15 s."""
        allow(caller, Action.READ)
        feed = context.feed or _start_feed(context)
        return StreamingResponse(_records(request, feed, hierarchy),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store",
                                          "X-Accel-Buffering": "no"})

    @app.get(f"{PREFIX}/why", tags=["read"])
    def why(caller: Caller = who, tag: str | None = None) -> dict[str, Any]:
        """Why TAG's hierarchy (default: any) last moved, or could not (tutela why)."""
        allow(caller, Action.READ)
        from tutela.cli.events import gather
        from tutela.cli.why import members_of
        from tutela.journal.why import explain

        members = members_of(context.state_dir)
        root = root_of(context, tag) if tag is not None else None
        gathered = context.reads.answer("all events", lambda: gather(
            context.state_dir, None, None, None))
        explanation = explain(gathered.events, root, members)
        return {"explanation": explanation and explanation.to_json(),
                "notes": gathered.notes, "local_only": gathered.local_only}

    @app.get(f"{PREFIX}/export", tags=["read"])
    def export(caller: Caller = who) -> dict[str, Any]:
        """The configuration in force as YAML, with its generation (tutela export)."""
        allow(caller, Action.READ)
        return _read(context, "export")

    @app.get(f"{PREFIX}/kits", tags=["read"])
    def kits(caller: Caller = who) -> list[dict[str, Any]]:
        """The built-in kits and the OCF agents installed here (tutela kit list), each
        usable one with its parameters (as in GET /kits/{name})."""
        allow(caller, Action.READ)
        answer: list[dict[str, Any]] = context.kits.answer("kits", _kit_list)
        return answer

    @app.get(f"{PREFIX}/kits/{{name}}", tags=["read"])
    def kit(name: str, caller: Caller = who) -> dict[str, Any]:
        """One kit's parameter model: rows (name, type, required, default, description)
        and, for built-in kits, the JSON schema of its parameters."""
        allow(caller, Action.READ)
        return _kit_model(name)


def _read(context: Context, op: str) -> dict[str, Any]:
    """tutelad's answer to the question `op`, shared with whoever asks it meanwhile."""
    answer: dict[str, Any] = context.reads.answer(op, lambda: daemon(context, op))
    return answer


def _since(text: str | None) -> datetime.datetime | None:
    from tutela.journal.events import parse_since

    if text is None:
        return None
    try:
        return parse_since(text, datetime.datetime.now(datetime.UTC))
    except ValueError as error:
        raise ApiError(422, "request", str(error), [
            {"field": "since", "message": str(error),
             "fix": "90s, 10m, 2h, 1d, or an ISO time"}]) from None


def _kit_list() -> list[dict[str, Any]]:
    from tutela.cli.kit import _rows
    from tutela.cli.kit_help import parameter_rows
    from tutela.kits.registry import get_kit
    from tutela.model.errors import ConfigError

    rows = _rows()
    for row in rows:
        if not row["unsupported"]:
            try:
                row["params"] = parameter_rows(get_kit(row["kit"]))
            except ConfigError as error:  # an agent that changed or broke meanwhile
                row["unsupported"] = str(error)
    return rows


def _kit_model(name: str) -> dict[str, Any]:
    from tutela.cli.kit_help import parameter_rows
    from tutela.kits.ocf import OcfKit, unsupported
    from tutela.kits.registry import get_kit
    from tutela.model.errors import ConfigError

    try:
        found = get_kit(name)
    except ConfigError as error:
        raise ApiError(404, "not-found", str(error), error.to_json()) from None
    model: dict[str, Any] = {"kit": name, "description": found.description,
                             "params": parameter_rows(found),
                             "timeouts": dict(found.default_timeouts)}
    if isinstance(found, OcfKit):
        model["unsupported"] = unsupported(found.agent)
    else:
        model["schema"] = found.Params.model_json_schema()
    return model


def _start_feed(context: Context) -> Feed:
    from tutela.cli.events import gather

    context.feed = Feed(context.state_dir,
                        lambda directory, since: gather(directory, None, since, None).events)
    return context.feed


async def _records(request: Request, feed: Feed, hierarchy: str | None
                   ) -> AsyncIterator[str]:
    queue = feed.listen()
    try:
        yield ": tutela event stream\n\n"
        while not await request.is_disconnected():
            try:
                event: Event = await asyncio.wait_for(queue.get(), HEARTBEAT)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if select([event], hierarchy):
                yield f"event: record\ndata: {json.dumps(event.to_json())}\n\n"
    finally:
        feed.leave(queue)


def _action_routes(app: FastAPI, context: Context) -> None:
    who = _caller_dependency(context)
    from tutela.cli.client import ACTION_TIMEOUT

    @app.post(f"{PREFIX}/hierarchies/{{tag}}/restore", tags=["operate"])
    def restore(tag: str, body: models.Place, caller: Caller = who) -> dict[str, Any]:
        """Bring TAG's hierarchy in service (on `on`, default here) (tutela restore)."""
        allow(caller, Action.OPERATE, root_of(context, tag))
        answer: dict[str, Any] = daemon(context, "restore", ACTION_TIMEOUT, tag=tag,
                                        on=body.on)
        return answer

    @app.post(f"{PREFIX}/hierarchies/{{tag}}/remove", tags=["operate"])
    def remove(tag: str, body: models.Place, caller: Caller = who) -> dict[str, Any]:
        """Take TAG's hierarchy out of service (tutela remove)."""
        allow(caller, Action.OPERATE, root_of(context, tag))
        answer: dict[str, Any] = daemon(context, "remove", ACTION_TIMEOUT, tag=tag,
                                        on=body.on)
        return answer

    @app.post(f"{PREFIX}/hierarchies/{{tag}}/switchover", tags=["operate"])
    def switchover(tag: str, body: models.Switchover, caller: Caller = who
                   ) -> dict[str, Any]:
        """Move TAG's hierarchy to node `to` (tutela switchover); 409 if it did not get
        there, saying where it runs."""
        allow(caller, Action.OPERATE, root_of(context, tag))
        answer: dict[str, Any] = daemon(context, "switchover", ACTION_TIMEOUT, tag=tag,
                                        to=body.to)
        return answer

    @app.post(f"{PREFIX}/maintenance", tags=["operate"], status_code=202)
    def maintenance(body: models.Maintenance, request: Request, caller: Caller = who
                    ) -> dict[str, Any]:
        """Stop tutelad on the answering node leaving its resources in service,
        unprotected (tutela stop --leave-resources); this node's API stops with it."""
        allow(caller, Action.MAINTAIN)
        # recorded while tutelad still runs: once it stops, it records nothing
        audit(context, request, caller.principal, 202,
              f"POST {request.url.path}: tutelad stops for maintenance")
        request.state.audited = True
        try:
            answer: dict[str, Any] = daemon(context, "stop", leave_resources=True,
                                            force=body.force)
        except ApiError:
            request.state.audited = False  # refused: the refusal is recorded too
            raise
        return answer


def _config_routes(app: FastAPI, context: Context) -> None:
    who = _caller_dependency(context)
    from tutela.cli.client import ACTION_TIMEOUT

    def change(caller: Caller, action: Action, hierarchy: str | None, op: str,
               timeout: float | None = None, **args: Any) -> dict[str, Any]:
        allow(caller, action, hierarchy)
        answer: dict[str, Any] = daemon(context, op, timeout, **args)
        return answer

    @app.post(f"{PREFIX}/resources", tags=["configure"])
    def resource_create(body: models.ResourceCreate, caller: Caller = who
                        ) -> dict[str, Any]:
        """Create a resource (tutela resource create); `restore` brings it in service."""
        hierarchy = (root_of(context, body.depends_on[0], "depends_on")
                     if body.depends_on else body.tag)
        recovery = {k: v for k, v in (("attempts", body.recovery_attempts),
                                      ("window", body.recovery_window)) if v is not None}
        return change(caller, Action.CONFIGURE, hierarchy, "resource.create", ACTION_TIMEOUT,
                      kit=body.kit, tag=body.tag, params=body.params,
                      depends_on=body.depends_on, check_interval=body.check_interval,
                      recovery=recovery or None,
                      protected=False if body.unprotected else None, restore=body.restore,
                      timeouts=body.timeouts or None)

    @app.delete(f"{PREFIX}/resources/{{tag}}", tags=["configure"])
    def resource_delete(tag: str, caller: Caller = who) -> dict[str, Any]:
        """Delete a resource that is out of service (tutela resource delete)."""
        return change(caller, Action.CONFIGURE, root_of(context, tag), "resource.delete",
                      tag=tag)

    @app.post(f"{PREFIX}/dependencies", tags=["configure"])
    def dependency_add(body: models.Dependency, caller: Caller = who) -> dict[str, Any]:
        """PARENT needs CHILD (tutela dependency add)."""
        return change(caller, Action.CONFIGURE, root_of(context, body.parent, "parent"),
                      "dependency.add", parent=body.parent, child=body.child)

    @app.delete(f"{PREFIX}/dependencies/{{parent}}/{{child}}", tags=["configure"])
    def dependency_remove(parent: str, child: str, caller: Caller = who) -> dict[str, Any]:
        """(tutela dependency remove)"""
        return change(caller, Action.CONFIGURE, root_of(context, parent, "parent"),
                      "dependency.remove", parent=parent, child=child)

    @app.post(f"{PREFIX}/hierarchies/{{tag}}/extend", tags=["configure"])
    def extend(tag: str, body: models.Extend, caller: Caller = who) -> dict[str, Any]:
        """Let node `to` run TAG's hierarchy (tutela hierarchy extend)."""
        return change(caller, Action.CONFIGURE, root_of(context, tag), "hierarchy.extend",
                      ACTION_TIMEOUT, tag=tag, to=body.to, priority=body.priority)

    @app.delete(f"{PREFIX}/hierarchies/{{tag}}/nodes/{{node}}", tags=["configure"])
    def unextend(tag: str, node: str, caller: Caller = who) -> dict[str, Any]:
        """NODE no longer runs TAG's hierarchy (tutela hierarchy unextend)."""
        return change(caller, Action.CONFIGURE, root_of(context, tag), "hierarchy.unextend",
                      tag=tag, node=node)

    @app.post(f"{PREFIX}/nodes/{{name}}/failover", tags=["configure"])
    def node_failover(name: str, body: models.NodeFailover, caller: Caller = who
                      ) -> dict[str, Any]:
        """Block or allow failover away from node NAME (tutela node failover)."""
        return change(caller, Action.CONFIGURE_CLUSTER, None, "node.failover", node=name,
                      allow=body.allow)

    @app.delete(f"{PREFIX}/nodes/{{name}}", tags=["configure"])
    def node_remove(name: str, caller: Caller = who, force: bool = False) -> dict[str, Any]:
        """Remove node NAME from the cluster (tutela node remove)."""
        return change(caller, Action.CONFIGURE_CLUSTER, None, "node.remove", node=name,
                      force=force)

    @app.post(f"{PREFIX}/paths", tags=["configure"])
    def path_add(body: models.PathAdd, caller: Caller = who) -> dict[str, Any]:
        """Add a comm path to a peer (tutela path add)."""
        return change(caller, Action.CONFIGURE_CLUSTER, None, "path.add",
                      **body.model_dump())

    @app.delete(f"{PREFIX}/paths/{{name}}", tags=["configure"])
    def path_remove(name: str, caller: Caller = who) -> dict[str, Any]:
        """(tutela path remove)"""
        return change(caller, Action.CONFIGURE_CLUSTER, None, "path.remove", name=name)

    @app.post(f"{PREFIX}/witnesses", tags=["configure"])
    def witness_add(body: models.WitnessAdd, caller: Caller = who) -> dict[str, Any]:
        """Enrol a tutela-witness (tutela witness add)."""
        return change(caller, Action.CONFIGURE_CLUSTER, None, "witness.add", ACTION_TIMEOUT,
                      address=body.address, token=body.token)

    @app.delete(f"{PREFIX}/witnesses/{{address}}", tags=["configure"])
    def witness_remove(address: str, caller: Caller = who) -> dict[str, Any]:
        """(tutela witness remove)"""
        return change(caller, Action.CONFIGURE_CLUSTER, None, "witness.remove",
                      address=address)

    @app.post(f"{PREFIX}/apply", tags=["configure"])
    def apply(body: models.Apply, caller: Caller = who) -> dict[str, Any]:
        """Make the cluster what the YAML document says; `dry_run`: only the diff, nothing
        changed (tutela apply [--dry-run])."""
        action = Action.READ if body.dry_run else Action.CONFIGURE_CLUSTER
        return change(caller, action, None, "apply", ACTION_TIMEOUT, yaml=body.yaml,
                      source="api", dry_run=body.dry_run)

    @app.post(f"{PREFIX}/config", tags=["configure"])
    def config_set(body: models.ConfigSet, caller: Caller = who) -> dict[str, Any]:
        """Change one value of the configuration (tutela config set KEY VALUE)."""
        action = Action.READ if body.dry_run else Action.CONFIGURE_CLUSTER
        return change(caller, action, None, "config.set", ACTION_TIMEOUT, key=body.key,
                      value=body.value, dry_run=body.dry_run)


def _gui(app: FastAPI) -> None:
    """The browser GUI's static files (tutela.gui, engineer G's) at the site's root."""
    from fastapi.staticfiles import StaticFiles

    from tutela.gui import STATIC_DIR

    if STATIC_DIR.is_dir():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="gui")
