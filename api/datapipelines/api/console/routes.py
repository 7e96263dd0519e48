"""The console's routes under /ui/: pages rendered on the server from the same services the
REST API answers with, actions as form POSTs (CSRF-checked), and one event stream per page that
says when the watch-fed catalog changed (the page then fetches its main part again)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from datapipelines.api import mapping, services
from datapipelines.api.access import KeyCaller
from datapipelines.api.console import views
from datapipelines.api.console.session import (
    COOKIE,
    COOKIE_PATH,
    LOGIN_COOKIE,
    Session,
    SessionSigner,
    derive_secret,
    same_token,
)
from datapipelines.api.deps import NOT_CONFIGURED, ArchiveDep, Gate, PodLogsDep, StoreDep
from datapipelines.api.errors import ApiError
from datapipelines.api.keyring import sha256
from datapipelines.api.settings import Settings
from datapipelines.api.store import PipelineStore
from datapipelines.resources.times import time_key

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC = "/ui/static"
FRAGMENT_HEADER = "x-console-fragment"
STREAMS_PER_SESSION = 4
EVENT_SPACING_SECONDS = 1.0  # at most one change event a second per stream
KEEPALIVE_SECONDS = 15.0
HISTORY_LIMIT = 1000
MAX_SIGNED_OUT = 10_000
LOG_TAIL_LINES = 500
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
HEALTHS = [
    ("all", "all"),
    ("failing", "failing"),
    ("running", "running"),
    ("not-ready", "not ready"),
    ("never-ran", "never ran"),
    ("ok", "ok"),
    ("disabled", "disabled"),
]

templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/ui", include_in_schema=False)


class SignInRequired(Exception):
    """No valid session: pages redirect to the sign-in form, fragments and streams get 401."""


class Console:
    """What the console keeps per app: the session signer and the open event streams."""

    def __init__(self, signer: SessionSigner, secure_cookie: bool | None) -> None:
        self.signer = signer
        self.secure_cookie = secure_cookie
        self.streams: dict[str, int] = {}
        self.signed_out: dict[str, int] = {}  # csrf token -> expiry, until the cookie expires

    def sign_out(self, session: Session) -> None:
        """The session ends here even if its cookie is replayed (this process; bounded)."""
        now = time.time()
        self.signed_out = {k: e for k, e in self.signed_out.items() if e > now}
        if len(self.signed_out) < MAX_SIGNED_OUT:
            self.signed_out[session.csrf] = session.expires

    def session(self, cookie: str | None) -> Session | None:
        session = self.signer.read(cookie)
        if session is None or session.csrf in self.signed_out:
            return None
        return session


@dataclass(frozen=True)
class SignedIn:
    caller: KeyCaller
    session: Session


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def _gate(request: Request) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


async def signed_in(request: Request) -> SignedIn:
    """The caller of the session cookie: a key the API still accepts."""
    session = _console(request).session(request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired
    caller = _gate(request).keyring.match_digest(session.digest)
    if caller is None:  # the key was revoked or rotated away
        raise SignInRequired
    request.state.caller = caller  # for the audit log
    return SignedIn(caller, session)


SignedInDep = Annotated[SignedIn, Depends(signed_in)]


def _secure(request: Request) -> bool:
    configured = _console(request).secure_cookie
    return configured if configured is not None else request.url.scheme == "https"


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    user: SignedIn | None = None,
    status_code: int = 200,
    live: bool = True,
) -> HTMLResponse:
    ctx = {
        "static": STATIC,
        "fragment": request.headers.get(FRAGMENT_HEADER) == "1",
        "signed_in": user is not None,
        "csrf": user.session.csrf if user else "",
        "who": user.caller.id if user else "",
        "live": live and user is not None,
        **context,
    }
    response = templates.TemplateResponse(request, template, ctx, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def error_page(
    request: Request, exc: ApiError, user: SignedIn | None, back: str = "/ui/"
) -> HTMLResponse:
    title = {403: "Not allowed", 404: "Not found", 409: "Conflict"}.get(exc.status_code, "Error")
    return page(
        request,
        "error.html",
        {"status": exc.status_code, "title": title, "message": exc.detail, "back": back},
        user=user,
        status_code=exc.status_code,
        live=False,
    )


def _check_csrf(user: SignedIn, token: str | None) -> None:
    if not same_token(token, user.session.csrf):
        raise _CsrfRefused


class _CsrfRefused(Exception):
    pass


# --- signing in and out ----------------------------------------------------------------------


def _safe_next(value: str | None) -> str:
    """Only a path of the console (no open redirect)."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/"


@router.get("", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=308)


@router.get("/login")
async def login_form(request: Request, next: str = "/ui/") -> Response:
    if not _gate(request).keyring.configured:
        return Response(NOT_CONFIGURED, status_code=500, media_type="text/plain")
    token = secrets.token_urlsafe(24)
    response = page(
        request, "login.html", {"login_csrf": token, "next": _safe_next(next), "error": None}
    )
    response.set_cookie(
        LOGIN_COOKIE, token, path=COOKIE_PATH, httponly=True, samesite="strict",
        secure=_secure(request), max_age=3600,
    )  # fmt: skip
    return response


@router.post("/login")
async def login(
    request: Request,
    key: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/ui/",
) -> Response:
    gate = _gate(request)
    if not gate.keyring.configured:
        return Response(NOT_CONFIGURED, status_code=500, media_type="text/plain")
    if not same_token(csrf, request.cookies.get(LOGIN_COOKIE) or ""):
        return Response("sign-in form expired: reload it", status_code=403, media_type="text/plain")
    caller = gate.keyring.match(key) if key else None
    if caller is None:
        log.info("console sign-in refused")
        return page(
            request,
            "login.html",
            {"login_csrf": csrf, "next": _safe_next(next), "error": "That key is not accepted."},
            status_code=401,
        )
    _, cookie = _console(request).signer.new(sha256(key))
    log.info("console sign-in", extra={"caller": caller.id})
    redirect = RedirectResponse(_safe_next(next), status_code=303)
    redirect.set_cookie(
        COOKIE, cookie, path=COOKIE_PATH, httponly=True, samesite="strict",
        secure=_secure(request), max_age=_console(request).signer.lifetime,
    )  # fmt: skip
    redirect.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    return redirect


@router.post("/logout")
async def logout(
    request: Request, user: SignedInDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    _check_csrf(user, csrf)
    _console(request).sign_out(user.session)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    log.info("console sign-out", extra={"caller": user.caller.id})
    return response


# --- pages -----------------------------------------------------------------------------------


@router.get("/")
async def connections_page(
    request: Request,
    user: SignedInDep,
    store: StoreDep,
    q: str = "",
    health: str = "all",
    page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> Response:
    try:
        store.ensure_ready()
        rows = await _rows(store, user)
    except ApiError as exc:
        return error_page(request, exc, user)
    matching = views.filter_rows(rows, q, health)
    shown, page_number, pages = views.page_of(matching, page_number)
    now = datetime.now(UTC)
    shown = [views.with_next_tick(row, now) for row in shown]
    query = {"q": q, "health": health}
    return page(
        request,
        "connections.html",
        {
            "page": "connections",
            "rows": shown,
            "matching": len(matching),
            "total": len(rows),
            "page_number": page_number,
            "pages": pages,
            "page_query": lambda n: urlencode({**query, "page": n}),
            "counts": views.health_counts(rows),
            "query": q,
            "health": health,
            "healths": HEALTHS,
        },
        user=user,
    )


async def _rows(store: PipelineStore, user: SignedIn) -> list[views.ConnectionRow]:
    catalog = store.catalog
    rows = []
    for key in await services.readable_connections(store, user.caller):
        conn = catalog.connection(key)
        if conn is None:
            continue
        status = mapping.connection_status_out(catalog, conn)
        active_runs = catalog.active_runs(key)
        active = mapping.task_status_of_run(active_runs[0]) if active_runs else None
        last = catalog.last_finished(key)
        last_rows = last_phase = None
        if last is not None and last.name == status.last_run_id:
            last_rows = mapping.run_result(last).rows_inserted
            last_phase = mapping.phase_name(last)
        rows.append(
            views.connection_row(
                status,
                time_zone=conn.time_zone,
                active=active,
                last_rows=last_rows,
                last_phase=last_phase,
            )
        )
    return rows


@router.get("/connections/{namespace}/{name}")
async def connection_page(
    request: Request, user: SignedInDep, store: StoreDep, namespace: str, name: str
) -> Response:
    try:
        store.ensure_ready()
        conn = await services.get_connection(store, name, caller=user.caller, namespace=namespace)
        manifest = await store.connection_manifest(namespace, name) or {}
    except ApiError as exc:
        return error_page(request, exc, user)
    catalog = store.catalog
    status = mapping.connection_status_out(catalog, conn)
    runs = sorted(
        catalog.runs_of(conn.key),
        key=lambda r: (time_key(r.metadata.creation_timestamp), r.name),
        reverse=True,
    )
    tick = views.connection_row(
        status, time_zone=conn.time_zone, active=None, last_rows=None, now=datetime.now(UTC)
    ).next_tick
    return page(
        request,
        "connection.html",
        {
            "page": "connection",
            "conn": status,
            "next_tick": tick,
            "conditions": (manifest.get("status") or {}).get("conditions") or [],
            "runs": [mapping.task_status_of_run(r) for r in runs[:20]],
            "manifest": views.manifest_yaml(manifest) if manifest else "",
        },
        user=user,
    )


@router.get("/tasks/{task_id}")
async def task_page(
    request: Request, user: SignedInDep, store: StoreDep, pod_logs: PodLogsDep, task_id: str
) -> Response:
    try:
        store.ensure_ready()
        task = await services.task_status_with_report(store, task_id, caller=user.caller)
        if task.kind == "batch":
            return page(request, "batch.html", {"page": "task", "task": task}, user=user)
        logs = await services.run_logs(
            store, pod_logs, task_id, caller=user.caller, tail_lines=LOG_TAIL_LINES
        )
    except ApiError as exc:
        return error_page(request, exc, user)
    run = await services.visible_run(store, task_id, caller=user.caller)
    return page(
        request,
        "run.html",
        {
            "page": "task",
            "task": task,
            "namespace": run.namespace if run else "",
            "tables": views.table_progress(task),
            "duration": views.duration_text(task.result.duration_ms) if task.result else None,
            "logs": logs.text,
            "logs_source": {
                "pod": f"pod {logs.pod}",
                "stored": "the log kept with the run (its head and tail): the pod is gone",
                "report": "the run's report: the pod is gone",
                "none": "none yet",
            }[logs.source],
        },
        user=user,
    )


@router.get("/history")
async def history_page(
    request: Request,
    user: SignedInDep,
    store: StoreDep,
    archive: ArchiveDep,
    connection: str = "",
    status: str = "",
    since: str = "",
    page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> Response:
    try:
        store.ensure_ready()
        entries, archive_ok = await services.history(
            store, archive, HISTORY_LIMIT, caller=user.caller
        )
    except ApiError as exc:
        return error_page(request, exc, user)
    try:
        since_date = date.fromisoformat(since) if since else None
    except ValueError:
        since_date = None
    flt = views.HistoryFilter(
        connection=connection,
        status=status if status in ("succeeded", "failed", "cancelled") else "",
        since=since_date,
        page=page_number,
    )
    hp = views.history_page(entries, flt)
    return page(
        request,
        "history.html",
        {
            "page": "history",
            "hp": hp,
            "flt": flt,
            "durations": [views.duration_text(e.duration_ms) for e in hp.entries],
            "archive_note": None
            if archive_ok
            else "The run archive could not be read: showing the runs still in the cluster.",
        },
        user=user,
    )


# --- actions ---------------------------------------------------------------------------------


@router.post("/connections/{namespace}/{name}/run")
async def run_action(
    request: Request,
    user: SignedInDep,
    store: StoreDep,
    namespace: str,
    name: str,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    _check_csrf(user, csrf)
    try:
        store.ensure_ready()
        run = await services.start_run(
            store, name, caller=user.caller, trigger="api", namespace=namespace
        )
    except ApiError as exc:
        return error_page(request, exc, user, back=f"/ui/connections/{namespace}/{name}")
    return RedirectResponse(f"/ui/tasks/{quote(run.name)}", status_code=303)


@router.post("/run_selected")
async def run_selected_action(
    request: Request, user: SignedInDep, store: StoreDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    _check_csrf(user, csrf)
    try:
        store.ensure_ready()
        batch = await services.run_selected(store, caller=user.caller)
    except ApiError as exc:
        return error_page(request, exc, user)
    return RedirectResponse(f"/ui/tasks/{quote(batch.task_id)}", status_code=303)


@router.post("/tasks/{task_id}/cancel")
async def cancel_action(
    request: Request,
    user: SignedInDep,
    store: StoreDep,
    task_id: str,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    _check_csrf(user, csrf)
    try:
        store.ensure_ready()
        await services.cancel_task(store, task_id, caller=user.caller)
    except ApiError as exc:
        return error_page(request, exc, user, back=f"/ui/tasks/{task_id}")
    return RedirectResponse(f"/ui/tasks/{quote(task_id)}", status_code=303)


# --- the event stream ------------------------------------------------------------------------


@router.get("/events")
async def events(request: Request, user: SignedInDep, store: StoreDep) -> Response:
    """`change` each time the catalog changed (at most one a second), a comment every 15 s,
    `signout` when the session ends; at most STREAMS_PER_SESSION at once per session."""
    console = _console(request)
    slot = user.session.csrf
    if console.streams.get(slot, 0) >= STREAMS_PER_SESSION:
        return Response(
            f"at most {STREAMS_PER_SESSION} live pages per session",
            status_code=429,
            headers={"Retry-After": "2"},
            media_type="text/plain",
        )
    console.streams[slot] = console.streams.get(slot, 0) + 1
    gate = _gate(request)

    async def stream() -> AsyncIterator[str]:
        try:
            generation = store.catalog.generation
            yield "retry: 2000\n\n"
            while True:
                if console.session(request.cookies.get(COOKIE)) is None or (
                    gate.keyring.match_digest(user.session.digest) is None
                ):
                    yield "event: signout\ndata: \n\n"
                    return
                try:
                    async with asyncio.timeout(KEEPALIVE_SECONDS):
                        generation = await store.catalog.changed_since(generation)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield f"event: change\ndata: {generation}\n\n"
                await asyncio.sleep(EVENT_SPACING_SECONDS)
        finally:
            left = console.streams.get(slot, 1) - 1
            if left > 0:
                console.streams[slot] = left
            else:
                console.streams.pop(slot, None)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


# --- handlers --------------------------------------------------------------------------------


async def sign_in_required(request: Request, exc: Exception) -> Response:
    wants_part = request.headers.get(FRAGMENT_HEADER) == "1" or request.url.path == "/ui/events"
    if wants_part or request.method != "GET":
        return Response("sign in first", status_code=401, media_type="text/plain")
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)


async def csrf_refused(request: Request, exc: Exception) -> Response:
    log.warning("console request without a valid CSRF token", extra={"path": request.url.path})
    return Response(
        "refused: the form's CSRF token is missing or wrong (reload the page)",
        status_code=403,
        media_type="text/plain",
    )


def install(app: Any, settings: Settings) -> None:
    """Mount the console on `app` (its routes, static files and handlers)."""
    gate: Gate = app.state.gate
    secret = derive_secret(
        settings.console_secret.get_secret_value() if settings.console_secret else None,
        gate.keyring.unscoped_digests,
    )
    app.state.console = Console(
        SessionSigner(secret, settings.console_session_seconds), settings.console_secure_cookie
    )
    app.include_router(router)
    app.mount(STATIC, StaticFiles(directory=HERE / "static"), name="console-static")
    app.add_exception_handler(SignInRequired, sign_in_required)
    app.add_exception_handler(_CsrfRefused, csrf_refused)
