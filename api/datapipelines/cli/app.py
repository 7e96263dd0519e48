"""The commands of `datapipelines`, each one or a few REST calls and a table (or `-o json`)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console, RenderableType
from rich.rule import Rule
from rich.text import Text
from typer.core import TyperGroup

from datapipelines.cli import contexts, oauth2, render
from datapipelines.cli import follow as following
from datapipelines.cli.client import EXIT_INTERRUPTED, TIMEOUT_SECONDS, ApiClient, CliError
from datapipelines.cli.config import DEFAULT_URL, KEY_ENV, TOKEN_ENV, URL_ENV, resolve

HELP = """\
Run and inspect datapipelines through its REST API.

The API is --api or $DATAPIPELINES_API_URL, else the current context's (`datapipelines config`),
else http://127.0.0.1:8081; the key is --key or $DATAPIPELINES_API_KEY, else the context's, else
.cluster/api-key when run inside the repository after `make demo`. NO_COLOR is honoured.

\b
Exit codes: 0 ok; 1 a run failed; 2 bad usage; 3 a run was cancelled;
4 the API could not be reached or refused the request (unreachable, 401, 404, 409, 5xx);
130 interrupted while waiting (the run goes on).
"""


PIPE_WIDTH = 200


class Output(StrEnum):
    table = "table"
    wide = "wide"
    json = "json"
    yaml = "yaml"
    name = "name"


OutputOpt = Annotated[
    Output,
    typer.Option(
        "--output",
        "-o",
        help="table or wide (more columns) for people; json or yaml (the API's body) for "
        "scripts; name (ids only, one per line).",
    ),
]
NoHeadersOpt = Annotated[
    bool, typer.Option("--no-headers", help="Tables without their header line.")
]
TABLES = (Output.table, Output.wide)
ID_FIELDS = ("task_id", "run_id", "name")  # what `-o name` prints of an item, first found


def ids_of(data: Any) -> list[str]:
    """What `-o name` prints: each item's id (connection name, task or run id)."""
    items = data if isinstance(data, list) else [data]
    out = []
    for item in items:
        if isinstance(item, dict):
            found = next((item[k] for k in ID_FIELDS if item.get(k)), None)
            if found is not None:
                out.append(str(found))
    return out


ConnectionArg = Annotated[str, typer.Argument(metavar="NAME", help="A connection's name.")]
TaskArg = Annotated[
    str, typer.Argument(metavar="TASK_ID", help="A run id or a batch id (the task_id).")
]
RunArg = Annotated[str, typer.Argument(metavar="RUN_ID", help="A run id.")]
IntervalOpt = Annotated[
    float,
    typer.Option("--interval", min=0.05, help="Seconds between status polls while waiting."),
]


class _Group(TyperGroup):
    """Reports a CliError as one line on stderr and exits with its code (no traceback)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as exc:
            Console(stderr=True, highlight=False, markup=False).print(
                f"error: {exc.message}", soft_wrap=True
            )
            raise typer.Exit(exc.code) from None


app = typer.Typer(
    name="datapipelines",
    cls=_Group,
    help=HELP,
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish)
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@dataclass
class State:
    api: ApiClient | None
    console: Console
    err: Console
    context: str | None = None

    @property
    def client(self) -> ApiClient:
        assert self.api is not None, "`config` commands talk to no API"
        return self.api

    def emit(self, output: Output, data: Any, tables: Callable[[], list[RenderableType]]) -> None:
        if output not in TABLES:
            if output is Output.json:
                text = json.dumps(data, indent=2) + "\n"
            elif output is Output.yaml:
                text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
            else:
                text = "".join(f"{i}\n" for i in ids_of(data))
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        for renderable in tables():
            self.console.print(renderable)


def _console(stream: Any, *, stderr: bool = False) -> Console:
    """Rich output; piped or redirected, tables keep their full width (no `…` cuts)."""
    width = None if stream.isatty() else int(os.environ.get("COLUMNS") or PIPE_WIDTH)
    return Console(stderr=stderr, highlight=False, markup=False, width=width)


def _state(ctx: typer.Context) -> State:
    state: State = ctx.obj
    return state


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as installed

        try:
            found = installed("datapipelines")
        except PackageNotFoundError:
            found = "unknown"
        print(f"datapipelines {found}")
        raise typer.Exit()


@app.callback()
def options(
    ctx: typer.Context,
    api: Annotated[
        str, typer.Option("--api", envvar=URL_ENV, help="Base URL of the REST API.")
    ] = DEFAULT_URL,
    key: Annotated[
        str | None,
        typer.Option("--key", envvar=KEY_ENV, help="API key (X-API-Key).", show_default=False),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar=TOKEN_ENV,
            help="A Kubernetes token (e.g. `kubectl create token NAME`) sent as Authorization: "
            "Bearer instead of a key, when the API accepts them: your RBAC decides.",
            show_default=False,
        ),
    ] = None,
    context: Annotated[
        str | None,
        typer.Option(
            "--context",
            envvar=contexts.CONTEXT_ENV,
            help="A named context of the config file (default: its current-context).",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds to wait for one API answer.")
    ] = TIMEOUT_SECONDS,
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    err = _console(sys.stderr, stderr=True)
    if ctx.invoked_subcommand == "config":  # works on the file even when it is broken
        ctx.obj = State(None, _console(sys.stdout), err, context)
        return
    path = contexts.config_path()
    chosen = contexts.selected(contexts.load(path), context, path)

    def given(param: str) -> str:  # typer's own (vendored) click: compare by name
        return getattr(ctx.get_parameter_source(param), "name", "")

    key_source: str | None = None
    if chosen is not None:
        if given("api") == "DEFAULT" and chosen.api:
            api = chosen.api
        if key is None and not token:
            key, key_source = chosen.read_key(), f"context {chosen.name}"
            token = None if key else chosen.read_token()
    target = resolve(api, key, key_from_env=given("key") == "ENVIRONMENT")
    if key_source and target.key:
        target = dataclasses.replace(target, key_source=key_source)
    if token and token.strip():
        target = dataclasses.replace(target, token=token.strip())
    client = ApiClient(target, timeout=timeout)
    ctx.call_on_close(client.close)
    ctx.obj = State(client, _console(sys.stdout), err, context)


@app.command("connections")
def connections_cmd(
    ctx: typer.Context,
    enabled: Annotated[bool, typer.Option("--enabled", help="Only enabled connections.")] = False,
    output: OutputOpt = Output.table,
    no_headers: NoHeadersOpt = False,
) -> None:
    """List the connections (name, type, schema, policy, schedule, last run, active runs)."""
    st = _state(ctx)
    rows = st.client.connections(only_enabled=enabled)
    st.emit(
        output,
        rows,
        lambda: [
            render.connections(
                rows, wide=output is Output.wide, headers=not no_headers, width=st.console.width
            )
        ],
    )


@app.command("status")
def status_cmd(ctx: typer.Context, name: ConnectionArg, output: OutputOpt = Output.table) -> None:
    """The latest status of one connection and its last finished run."""
    st = _state(ctx)
    body = st.client.connection_status(name)
    st.emit(output, body, lambda: [render.connection_status(body)])


@app.command("schema")
def schema_cmd(
    ctx: typer.Context,
    name: ConnectionArg,
    output: OutputOpt = Output.table,
    no_headers: NoHeadersOpt = False,
) -> None:
    """What a connection loads: its tables and columns (types, keys, child tables), as its
    newest successful run reported them, and its recent schema changes."""
    st = _state(ctx)
    body = st.client.connection_schema(name)

    def tables() -> list[RenderableType]:
        out: list[RenderableType] = [render.schema_summary(body)]
        if body.get("tables"):
            out.append(render.schema_columns(body, headers=not no_headers))
        for entry in (body.get("recent_changes") or [])[:5]:
            changes = ", ".join(
                f"{c['kind']} {c['table']}" + (f".{c['column']}" if c.get("column") else "")
                for c in entry["changes"]
            )
            out.append(f"changed by {entry['run_id']} ({entry.get('finished_at')}): {changes}")
        return out

    st.emit(output, body, tables)


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    name: ConnectionArg,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the run live until it ends; show the result.")
    ] = False,
    report: Annotated[
        bool, typer.Option("--report", help="With --wait: print the run's report too.")
    ] = False,
    interval: IntervalOpt = 1.0,
    full_refresh: Annotated[
        bool,
        typer.Option(
            "--full-refresh",
            help="Re-load from scratch: DESTRUCTIVE, the streams' tables are replaced by what "
            "this run loads (swapped in when it completes) and their cursors start again.",
        ),
    ] = False,
    streams: Annotated[
        str | None,
        typer.Option(
            "--streams",
            help="Only these streams (comma-separated), e.g. with --full-refresh to re-load one.",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Backfill: incremental streams start from this date or time (2026-01-31 or "
            "2026-01-31T12:00:00Z) for this run.",
            show_default=False,
        ),
    ] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Start a run of a connection; with --wait, show its progress per table until it ends.

    Exits 1 when the run fails, 3 when it is cancelled."""
    if report and not wait:
        raise typer.BadParameter("--report needs --wait", param_hint="--report")
    st = _state(ctx)
    options: dict[str, str] = {}
    if full_refresh:
        options["full_refresh"] = "true"
    if streams:
        options["streams"] = streams
    if since:
        options["since"] = since if "T" in since else f"{since}T00:00:00Z"
    started = st.client.run_async(name, options)
    task_id = started["task_id"]
    if not wait:
        st.emit(
            output,
            started,
            lambda: [
                f"started run {task_id} of {name}",
                f"follow it: datapipelines tasks {task_id}   "
                f"cancel it: datapipelines cancel {task_id}",
            ],
        )
        return
    status = _wait(st, task_id, following.RunView(task_id), output, interval, following.run_lines)
    result = dict(status.get("result") or {})
    if not report:  # the body of POST /connections/{name}/run without include_report
        result["report"] = None
        result["report_truncated"] = None

    def tables() -> list[RenderableType]:
        out: list[RenderableType] = [render.run_result(result, connection=name)]
        counts = render.table_counts(result.get("progress_counts"))
        if counts is not None:
            out.append(counts)
        if report and result.get("report"):
            out += [Rule("report"), Text(str(result["report"]))]
        return out

    st.emit(output, result, tables)
    raise typer.Exit(following.run_exit_code(status))


@app.command("run-all")
def run_all_cmd(
    ctx: typer.Context,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the batch until it ends, a line per connection.")
    ] = False,
    interval: IntervalOpt = 1.0,
    output: OutputOpt = Output.table,
) -> None:
    """Start a batch of every enabled connection (one after another).

    With --wait, exits 1 when a run of the batch failed, 3 when the batch was cancelled."""
    st = _state(ctx)
    batch = st.client.run_selected()
    task_id = batch["task_id"]
    if not wait:
        st.emit(
            output,
            batch,
            lambda: [
                f"started batch {task_id}: {render.cell(batch['connections'])}",
                f"follow it: datapipelines tasks {task_id}   "
                f"cancel it: datapipelines cancel {task_id}",
            ],
        )
        return
    view = following.BatchView(task_id)
    status = _wait(st, task_id, view, output, interval, following.batch_lines)
    st.emit(
        output,
        status,
        lambda: [
            render.batch_runs(following.batch_rows(status), title=f"batch {task_id}"),
            f"{status.get('status')}: {len(status.get('completed') or [])} of "
            f"{len(status.get('connections') or [])} connection(s) done",
        ],
    )
    raise typer.Exit(following.batch_exit_code(status))


def _wait(
    st: State,
    task_id: str,
    view: following.RunView | following.BatchView,
    output: Output,
    interval: float,
    lines: Callable[[following.Status], list[str]],
) -> following.Status:
    live = output in TABLES and st.console.is_terminal
    try:
        return following.follow(
            lambda: st.client.task_status(task_id),
            view,
            console=st.console,
            log=st.err,
            live=live,
            interval=interval,
            lines=lines if output in TABLES else (lambda _status: []),
        )
    except KeyboardInterrupt:
        st.err.print(
            f"interrupted: {task_id} goes on (datapipelines tasks {task_id}; "
            f"datapipelines cancel {task_id})",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None


@app.command("tasks")
def tasks_cmd(ctx: typer.Context, task_id: TaskArg, output: OutputOpt = Output.table) -> None:
    """The status of a run or a batch by its task id."""
    st = _state(ctx)
    body = st.client.task_status(task_id)

    def tables() -> list[RenderableType]:
        out: list[RenderableType] = [render.task(body)]
        if body.get("kind") == "batch":
            out.append(render.batch_runs(following.batch_rows(body)))
            return out
        if body.get("active") and (body.get("progress") or {}).get("tables"):
            view = following.RunView(task_id)
            view.update(body)
            out.append(view.table())
        result = body.get("result")
        if result:
            out.append(render.run_result(result, connection=body.get("connection")))
            counts = render.table_counts(result.get("progress_counts"))
            if counts is not None:
                out.append(counts)
        return out

    st.emit(output, body, tables)


@app.command("cancel")
def cancel_cmd(ctx: typer.Context, task_id: TaskArg, output: OutputOpt = Output.table) -> None:
    """Cancel a run or a batch (it ends as cancelled within seconds)."""
    st = _state(ctx)
    body = st.client.cancel(task_id)
    st.emit(output, body, lambda: [body["message"]])


class HistoryStatus(StrEnum):
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


@app.command("history")
def history_cmd(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option("--limit", "-l", min=1, max=1000, help="Entries (before filtering).")
    ] = 10,
    connection: Annotated[
        str | None,
        typer.Option("--connection", "-c", help="Only this connection's runs.", show_default=False),
    ] = None,
    status: Annotated[
        HistoryStatus | None,
        typer.Option("--status", help="Only runs that ended so.", show_default=False),
    ] = None,
    output: OutputOpt = Output.table,
    no_headers: NoHeadersOpt = False,
) -> None:
    """Finished runs, newest first (-l, not -n: -n is a namespace to kubectl users).

    DURATION is wall-clock: from the run's start to its end, every attempt included."""
    st = _state(ctx)
    entries, archive = st.client.history(limit)
    entries = [
        e
        for e in entries
        if (connection is None or e.get("connection") == connection)
        and (status is None or e.get("status") == status.value)
    ]
    st.emit(
        output,
        entries,
        lambda: [
            render.history(
                entries, wide=output is Output.wide, headers=not no_headers, width=st.console.width
            )
        ],
    )
    if output in TABLES and archive == "unavailable":
        st.err.print("note: the PostgreSQL archive could not be read: cluster runs only")


@app.command("logs")
def logs_cmd(
    ctx: typer.Context,
    run_id: RunArg,
    tail: Annotated[
        int | None, typer.Option("--tail", min=1, help="Only the last lines.", show_default=False)
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing the log until the run ends.")
    ] = False,
    interval: IntervalOpt = 1.0,
    output: OutputOpt = Output.table,
) -> None:
    """The log of a run's pod while its Job exists, else the log kept with the run (head and
    tail), else its report."""
    st = _state(ctx)
    if follow:
        if output not in TABLES:
            raise typer.BadParameter("-f prints the log itself: no -o", param_hint="--follow")
        _follow_logs(st, run_id, tail, interval)
        return
    body = st.client.run_logs(run_id, tail_lines=tail)
    if output not in TABLES:
        st.emit(output, body, lambda: [])
        return
    notes = {
        "pod": f"log of pod {body.get('pod')}",
        "stored": "the run's pod is gone: the log kept with the run (its head and tail)",
        "report": "the run's pod is gone: its report",
        "none": f"no log or report yet (phase {body.get('phase')})",
    }
    note = notes.get(body.get("source", ""), str(body.get("source")))
    if body.get("truncated"):
        note += " (truncated)"
    st.err.print(f"# {run_id}: {note}", markup=False, highlight=False, soft_wrap=True)
    text = str(body.get("text") or "")
    sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _follow_logs(st: State, run_id: str, tail: int | None, interval: float) -> None:
    window = max(tail or 0, 500)  # each poll reads the log's last lines, at most this many
    first = [True]

    def fetch() -> following.Status:
        body = st.client.run_logs(run_id, tail_lines=tail if first[0] and tail else window)
        first[0] = False
        return body

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def note(text: str) -> None:
        st.err.print(text, markup=False, highlight=False, soft_wrap=True)

    try:
        body = following.follow_log(fetch, write, note, interval=interval)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    note(f"# {run_id}: {body.get('phase')}")


def run() -> None:
    app(prog_name="datapipelines")


@app.command("oauth2-secret")
def oauth2_secret_cmd(
    secret: Annotated[str, typer.Argument(metavar="SECRET", help="The Secret's name.")],
    connection: Annotated[
        str, typer.Option("--connection", help="The connection that will rotate its token.")
    ],
    client_id: Annotated[str, typer.Option("--client-id", help="The app's client id.")],
    client_secret: Annotated[
        str,
        typer.Option(
            "--client-secret",
            envvar="DATAPIPELINES_OAUTH2_CLIENT_SECRET",
            help="The app's client secret (better: the environment variable).",
            show_default=False,
        ),
    ],
    redirect_uri: Annotated[
        str, typer.Option("--redirect-uri", help="The redirect URI registered for the app.")
    ],
    code: Annotated[
        str | None,
        typer.Option(
            "--code",
            help="The code the redirect carried (without it: the URL to open).",
            show_default=False,
        ),
    ] = None,
    authorize: Annotated[
        str, typer.Option("--authorize-url", help="The provider's authorization endpoint.")
    ] = oauth2.XERO_AUTHORIZE_URL,
    token_url: Annotated[
        str, typer.Option("--token-url", help="The provider's token endpoint.")
    ] = oauth2.XERO_TOKEN_URL,
    scope: Annotated[str, typer.Option("--scope", help="Scopes to consent to.")] = (
        oauth2.XERO_SCOPE
    ),
) -> None:
    """The first refresh token of an oauth2_refresh or Xero connection, as a Secret to apply:
    without --code, the URL to open and consent at; with the code the redirect carried, the
    Secret (annotated for the connection) on stdout: `… | kubectl apply -f -`. Defaults: Xero."""
    if code is None:
        url = oauth2.authorize_url(authorize, client_id, redirect_uri, scope)
        sys.stderr.write(
            "Open this URL, consent, and run this command again with --code <the code in the "
            "URL you are redirected to>:\n"
        )
        sys.stdout.write(url + "\n")
        return
    refresh = oauth2.exchange_code(token_url, client_id, client_secret, code, redirect_uri)
    manifest = oauth2.secret_manifest(secret, connection, client_id, client_secret, refresh)
    sys.stdout.write(json.dumps(manifest, indent=2) + "\n")


config_app = typer.Typer(
    name="config",
    cls=_Group,
    help="Named contexts for several installations (like kubectl config), in "
    "$DATAPIPELINES_CONFIG or ~/.config/datapipelines/config.yaml.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(config_app)


def _config_file() -> tuple[Path, contexts.CliConfig]:
    path = contexts.config_path()
    return path, contexts.load(path)


@config_app.command("get-contexts")
def get_contexts_cmd(
    ctx: typer.Context, output: OutputOpt = Output.table, no_headers: NoHeadersOpt = False
) -> None:
    """The contexts of the config file; * marks the current one."""
    st = _state(ctx)
    _path, config = _config_file()
    rows = [
        {
            "name": c.name,
            "current": c.name == config.current_context,
            "api": c.api,
            "auth": "key"
            if c.key
            else "key-file"
            if c.key_file
            else "token-file"
            if c.token_file
            else "none",
        }
        for c in config.contexts
    ]
    st.emit(output, rows, lambda: [render.contexts(rows, headers=not no_headers)])


@config_app.command("current-context")
def current_context_cmd() -> None:
    """The name of the current context."""
    path, config = _config_file()
    if not config.current_context:
        raise CliError(f"no current context in {path} (datapipelines config use-context NAME)")
    print(config.current_context)


@config_app.command("use-context")
def use_context_cmd(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A context's name.")],
) -> None:
    """Make a context the current one."""
    path, config = _config_file()
    contexts.selected(config, name, path)  # names the known ones when it is not there
    config.current_context = name
    contexts.save(path, config)
    print(f'switched to context "{name}"')


@config_app.command("set-context")
def set_context_cmd(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A context's name.")],
    api: Annotated[
        str | None, typer.Option("--api", help="Base URL of the REST API.", show_default=False)
    ] = None,
    key_file: Annotated[
        str | None,
        typer.Option("--key-file", help="A file holding the API key.", show_default=False),
    ] = None,
    token_file: Annotated[
        str | None,
        typer.Option("--token-file", help="A file holding a Kubernetes token.", show_default=False),
    ] = None,
    use: Annotated[bool, typer.Option("--use", help="Make it the current context.")] = False,
) -> None:
    """Create a context or change the fields given."""
    path, config = _config_file()
    found = config.find(name)
    data = found.model_dump(by_alias=True, exclude_none=True) if found else {"name": name}
    for field, value in (("api", api), ("key-file", key_file), ("token-file", token_file)):
        if value is not None:
            data[field] = value
    try:
        updated = contexts.Context.model_validate(data)
    except ValueError as exc:
        raise CliError(f"context {name}: {exc}", 2) from None
    config.contexts = [c for c in config.contexts if c.name != name] + [updated]
    if use or config.current_context is None:
        config.current_context = name
    contexts.save(path, config)
    print(f'context "{name}" {"modified" if found else "created"} in {path}')


@config_app.command("delete-context")
def delete_context_cmd(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A context's name.")],
) -> None:
    """Remove a context."""
    path, config = _config_file()
    contexts.selected(config, name, path)
    config.contexts = [c for c in config.contexts if c.name != name]
    if config.current_context == name:
        config.current_context = None
    contexts.save(path, config)
    print(f'deleted context "{name}" from {path}')
