"""Mock of the Fireflies.ai GraphQL API (``POST https://api.fireflies.ai/graphql``), following
docs.fireflies.ai (graphql-api/query/transcripts, schema/transcript, schema/user,
fundamentals/limits, miscellaneous/error-codes) as summarised in shared/SOURCES.md section 7.

Credentials: ``Authorization: Bearer fireflies-key`` (else ``auth_failed``).

A small GraphQL parser answers the queries ``transcripts(...)`` (offset paging with ``skip``
and ``limit`` <= 50, newest first; ``fromDate``/``toDate`` ISO DateTimes bound ``date``;
``organizers``, ``participants``, ``host_email``, ``organizer_email``, ``participant_email``,
``user_id``, ``mine``, ``title``/``keyword``), ``transcript(id:)``, ``users`` and ``user(id:)``,
with variables, aliases and nested selections (``sentences``, ``summary``, ``speakers``,
``meeting_attendees``, ...). Selecting an unknown field is a validation error, as on a real
GraphQL server. Errors are ``{"data": null, "errors": [{"message", "code", "friendly",
"extensions": {"code", "status", "metadata"?}}]}``; the HTTP status is ``extensions.status``
(``http_errors=False``: 200, as some GraphQL servers do). A 429 is ``too_many_requests`` with
``extensions.metadata.retryAfter`` and a ``Retry-After`` header.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from .server import MockApi, Request, Response
from .server import route as _route

_H = TypeVar("_H", bound=Callable[..., Response])


def route(method: str, pattern: str) -> Callable[[_H], _H]:
    """``server.route``, typed for a subclass's methods (its Handler takes a plain MockApi)."""
    return cast(Callable[[_H], _H], _route(method, pattern))


API_KEY = "fireflies-key"
BASE = datetime(2024, 1, 1, tzinfo=UTC)
MAX_LIMIT = 50
DEFAULT_STREAMS = ("transcripts", "transcript_participants", "meetings", "meeting_index")
TRANSCRIPTS_ARGS = {
    "limit", "skip", "fromDate", "toDate", "date", "title", "keyword", "scope", "host_email",
    "organizer_email", "participant_email", "organizers", "participants", "user_id", "mine",
    "channel_id",
}  # fmt: skip
HELP = "https://docs.fireflies.ai/miscellaneous/error-codes#"


class GraphQLError(Exception):
    def __init__(self, message: str, code: str, status: int, **metadata: Any) -> None:
        super().__init__(message)
        self.code, self.status, self.metadata = code, status, metadata

    def body(self) -> dict[str, Any]:
        if self.code.isupper():  # the GraphQL server's own (parse/validation) errors
            return {"errors": [{"message": str(self), "extensions": {"code": self.code}}]}
        ext: dict[str, Any] = {"code": self.code, "status": self.status}
        ext |= {"helpUrls": [HELP + self.code]} | (
            {"metadata": self.metadata} if self.metadata else {}
        )
        entry = {"message": str(self), "code": self.code, "friendly": True, "extensions": ext}
        return {"data": None, "errors": [entry]}


# ---------------------------------------------------------------------- a tiny GraphQL parser

_TOKEN = re.compile(
    r"[\s,]+|#[^\n]*|(?P<punct>\.\.\.|[{}():\[\]!$=@])|(?P<string>\"(?:\\.|[^\"\\])*\")"
    r"|(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<name>[_A-Za-z][_0-9A-Za-z]*)"
)


@dataclass
class Field:
    name: str
    alias: str
    args: dict[str, Any]
    selections: list[Field] | None


def invalid(message: str, code: str = "GRAPHQL_VALIDATION_FAILED") -> GraphQLError:
    return GraphQLError(message, code, 400)


class Parser:
    """Parses one query operation (no fragments, no mutations) into root ``Field`` s."""

    def __init__(self, text: str, variables: dict[str, Any]) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None:
                raise invalid(
                    f'Syntax Error: Unexpected character "{text[pos]}".', "GRAPHQL_PARSE_FAILED"
                )
            pos = match.end()
            if match.lastgroup:
                self.tokens.append((match.lastgroup, match.group(match.lastgroup)))
        self.pos, self.given = 0, variables
        self.variables: dict[str, Any] = {}

    def peek(self) -> str:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else "<EOF>"

    def take(self, expected: str | None = None) -> str:
        value = self.peek()
        if value == "<EOF>" or (expected is not None and value != expected):
            raise invalid(
                f'Syntax Error: Expected "{expected or "Name"}", found {value}.',
                "GRAPHQL_PARSE_FAILED",
            )
        self.pos += 1
        return value

    def document(self) -> list[Field]:
        if self.peek() in ("mutation", "subscription", "fragment"):
            raise invalid(f"The mock answers queries only, not {self.peek()}.")
        if self.peek() == "query":
            self.take()
            if self.peek() not in ("(", "{"):
                self.take()  # the operation's name
            if self.peek() == "(":
                self.variable_definitions()
        fields = self.selection_set()
        if self.pos != len(self.tokens):
            raise invalid("The mock answers one operation per request.", "GRAPHQL_PARSE_FAILED")
        return fields

    def variable_definitions(self) -> None:
        self.take("(")
        while self.peek() != ")":
            self.take("$")
            name = self.take()
            self.take(":")
            self.type_ref()
            default = None
            if self.peek() == "=":
                self.take("=")
                default = self.value()
            self.variables[name] = self.given.get(name, default)
        self.take(")")

    def type_ref(self) -> None:
        if self.peek() == "[":
            self.take("[")
            self.type_ref()
            self.take("]")
        else:
            self.take()
        if self.peek() == "!":
            self.take("!")

    def selection_set(self) -> list[Field]:
        self.take("{")
        fields = []
        while self.peek() != "}":
            if self.peek() == "...":
                raise invalid("The mock does not support fragments.")
            alias = name = self.take()
            if self.peek() == ":":
                self.take(":")
                name = self.take()
            args: dict[str, Any] = {}
            if self.peek() == "(":
                self.take("(")
                while self.peek() != ")":
                    key = self.take()
                    self.take(":")
                    args[key] = self.value()
                self.take(")")
            selections = self.selection_set() if self.peek() == "{" else None
            fields.append(Field(name, alias, args, selections))
        self.take("}")
        return fields

    def value(self) -> Any:
        kind, token = self.tokens[self.pos] if self.pos < len(self.tokens) else ("", "<EOF>")
        if token == "$":
            self.take("$")
            name = self.take()
            if name not in self.variables:
                raise invalid(f'Variable "${name}" is not defined.')
            return self.variables[name]
        if token in ("[", "{"):
            self.take(token)
            items: list[Any] = []
            obj: dict[str, Any] = {}
            while self.peek() != ("]" if token == "[" else "}"):
                if token == "[":
                    items.append(self.value())
                else:
                    key = self.take()
                    self.take(":")
                    obj[key] = self.value()
            self.take()
            return items if token == "[" else obj
        self.take()
        if kind == "string":
            return json.loads(token)
        if kind == "number":
            return float(token) if any(c in token for c in ".eE") else int(token)
        return {"true": True, "false": False, "null": None}.get(token, token)  # or an enum


def project(value: Any, field: Field) -> Any:
    """``value`` cut to ``field``'s selection set, as a GraphQL server answers it."""
    if value is None:
        return None
    if isinstance(value, list):
        return [project(item, field) for item in value]
    if isinstance(value, dict):
        type_name = value.get("__typename", "Object")
        if field.selections is None:
            raise invalid(
                f'Field "{field.name}" of type "{type_name}" must have a selection of subfields.'
            )
        out = {}
        for sub in field.selections:
            if sub.name not in value:
                raise invalid(f'Cannot query field "{sub.name}" on type "{type_name}".')
            out[sub.alias] = project(value[sub.name], sub)
        return out
    if field.selections is not None:
        raise invalid(
            f'Field "{field.name}" must not have a selection since its type has no subfields.'
        )
    return value


def ff_id(kind: str, i: int) -> str:
    """A 16-character alphanumeric id (like ``OvwNiwrXXWzo6q1v``), stable for (kind, i)."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    number = int.from_bytes(hashlib.sha256(f"{kind}-{i}".encode()).digest(), "big")
    return "".join(alphabet[(number >> (6 * k)) % 62] for k in range(16))


def bad_argument(name: str, message: str) -> GraphQLError:
    """Fireflies' ``invalid_arguments`` error naming the field (as in the docs' example)."""
    field = {"name": name, "message": message, "constraints": [{"message": message}]}
    return GraphQLError(
        "Invalid argument(s) were provided", "invalid_arguments", 400, fields=[field]
    )


def parse_date(name: str, value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise bad_argument(name, f"{name} must be a Date instance") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class FirefliesApi(MockApi):
    vendor = "fireflies"

    def __init__(self, rows: int = 50, *, users: int = 3, http_errors: bool = True) -> None:
        super().__init__()
        self.http_errors = http_errors
        self.users = [self._user(k) for k in range(max(1, users))]
        self.transcripts = [self._transcript(i) for i in range(rows)]
        self.clock = BASE + timedelta(hours=rows)

    # ------------------------------------------------------------------ dataset

    def _user(self, k: int) -> dict[str, Any]:
        return {
            "__typename": "User", "user_id": ff_id("user", k), "email": f"user{k}@example.com",
            "name": f"User {k}", "num_transcripts": 0, "recent_meeting": None,
            "recent_transcript": None, "minutes_consumed": 0.0, "is_admin": k == 0,
            "integrations": ["google_calendar"], "user_groups": [],
        }  # fmt: skip

    def _transcript(self, i: int, at: datetime | None = None) -> dict[str, Any]:
        when = at or BASE + timedelta(hours=i)
        tid = ff_id("transcript", i)
        host = self.users[i % len(self.users)]
        guests = [f"guest{i}-{g}@example.org" for g in range(1 + i % 3)]
        people = [(host["name"], host["email"])] + [
            (f"Guest {i}-{g}", e) for g, e in enumerate(guests)
        ]
        host["num_transcripts"] += 1
        host["recent_transcript"] = host["recent_meeting"] = tid
        sentences = [
            {"__typename": "Sentence", "index": s, "speaker_id": str(s % 2),
             "speaker_name": people[s % 2][0], "text": f"Sentence {s} of meeting {i}.",
             "raw_text": f"sentence {s} of meeting {i}", "start_time": 5.0 * s,
             "end_time": 5.0 * s + 4.5,
             "ai_filters": {"__typename": "AIFilter", "task": None, "pricing": None,
                            "metric": None, "question": None, "date_and_time": None,
                            "sentiment": "neutral"}}
            for s in range(2 + i % 3)
        ]  # fmt: skip
        summary = {
            "__typename": "Summary", "keywords": ["mock", f"m{i}"], "gist": f"Gist {i}",
            "action_items": f"Follow up on item {i}", "outline": f"Outline {i}",
            "overview": f"Overview of meeting {i}", "short_summary": f"Summary {i}",
            "shorthand_bullet": None, "bullet_gist": None, "short_overview": None,
            "meeting_type": "Team sync", "topics_discussed": [], "transcript_chapters": [],
        }  # fmt: skip
        return {
            "__typename": "Transcript", "id": tid, "title": f"Meeting {i}",
            "date": float(int(when.timestamp() * 1000)),
            "dateString": when.isoformat().replace("+00:00", "Z"),
            "duration": 15.0 + i % 45, "privacy": "teammates",
            "transcript_url": f"https://app.fireflies.ai/view/{tid}",
            "audio_url": None, "video_url": None,
            "meeting_link": None if i % 5 == 0 else f"https://meet.google.com/mock-{i:06d}",
            "calendar_id": None if i % 4 == 0 else f"cal-{i:06d}", "cal_id": None,
            "calendar_type": "google", "host_email": host["email"],
            "organizer_email": host["email"], "participants": [host["email"], *guests],
            "fireflies_users": [host["email"]], "workspace_users": [host["email"]],
            "speakers": [{"__typename": "Speaker", "id": str(k), "name": people[k][0]}
                         for k in range(2)],
            "meeting_attendees": [{"__typename": "MeetingAttendee", "displayName": n, "email": e,
                                   "phoneNumber": None, "name": n, "location": None}
                                  for n, e in people],
            "sentences": sentences, "summary": summary,
            "user": {k: host[k] for k in ("__typename", "user_id", "email", "name")},
            "meeting_info": {"__typename": "MeetingInfo", "fred_joined": True,
                             "silent_meeting": False, "summary_status": "processed"},
            "_at": when,
        }  # fmt: skip

    # ------------------------------------------------------------------ test controls

    def touch(self, n: int) -> list[str]:
        """Record ``n`` new meetings one hour apart, after everything else (transcripts only
        change by appearing: ``fromDate`` bounds the meeting ``date``); their ids."""
        with self.lock:
            new = []
            for _ in range(n):
                self.clock += timedelta(hours=1)
                new.append(self._transcript(len(self.transcripts), self.clock))
                self.transcripts.append(new[-1])
            return [t["id"] for t in new]

    def expected_counts(self, streams: Iterable[str] = DEFAULT_STREAMS) -> dict[str, int]:
        """Rows per stream of a full sync. Every generated meeting has its own meeting key
        (calendar id, else link, else host/minute/duration/title), so ``meetings`` and
        ``meeting_index`` have one row per transcript; also ``sentences`` and ``users``."""
        counts = {
            "transcripts": len(self.transcripts),
            "transcript_participants": sum(len(t["participants"]) for t in self.transcripts),
            "meetings": len(self.transcripts),
            "meeting_index": len(self.transcripts),
            "sentences": sum(len(t["sentences"]) for t in self.transcripts),
            "users": len(self.users),
        }
        return {name: counts[name] for name in streams}

    # ------------------------------------------------------------------ vendor shapes

    def _response(self, exc: GraphQLError, headers: dict[str, str] | None = None) -> Response:
        return Response(exc.status if self.http_errors else 200, exc.body(), headers or {})

    def authorize(self, request: Request) -> Response | None:
        if request.bearer == API_KEY:
            return None
        return self._response(GraphQLError("Invalid API key", "auth_failed", 401))

    def error(self, status: int, message: str) -> Response:
        codes = {
            400: "invalid_arguments",
            401: "auth_failed",
            403: "forbidden",
            404: "object_not_found",
        }
        return self._response(
            GraphQLError(message, codes.get(status, "internal_server_error"), status)
        )

    def rate_limited(self, retry_after: float | None) -> Response:
        wait = 60.0 if retry_after is None else retry_after
        at = datetime.fromtimestamp(time.time() + wait, UTC).isoformat(timespec="milliseconds")
        at = at.replace("+00:00", "Z")
        exc = GraphQLError(
            f"Too many requests. Please retry after {at}", "too_many_requests", 429, retryAfter=at
        )
        return self._response(exc, {"Retry-After": f"{wait:g}"})

    # ------------------------------------------------------------------ the endpoint

    @route("POST", "/graphql")
    def graphql(self, request: Request) -> Response:
        try:
            payload = request.json()
            if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
                raise invalid(
                    "POST body must be a JSON object with a string 'query'.", "BAD_REQUEST"
                )
            variables = payload.get("variables") or {}
            if not isinstance(variables, dict):
                raise invalid("Variables must be provided as an Object.", "BAD_REQUEST")
            fields = Parser(payload["query"], variables).document()
            with self.lock:
                data = {f.alias: project(self._resolve(f), f) for f in fields}
        except GraphQLError as exc:
            return self._response(exc)
        except ValueError:
            return self._response(invalid("POST body sent invalid JSON.", "BAD_REQUEST"))
        return Response(200, {"data": data})

    def _resolve(self, field: Field) -> Any:
        args = field.args
        if field.name == "transcripts":
            return self._transcripts(args)
        if field.name == "transcript":
            if "id" not in args:
                raise invalid('Field "transcript" argument "id" of type "String!" is required.')
            found = next((t for t in self.transcripts if t["id"] == args["id"]), None)
            if found is None:
                raise GraphQLError(
                    "Transcript not found", "object_not_found", 404, objectType="Transcript"
                )
            return found
        if field.name == "users":
            return self.users
        if field.name == "user":
            found = next((u for u in self.users if args.get("id") in (None, u["user_id"])), None)
            if found is None:
                raise GraphQLError("User not found", "object_not_found", 404, objectType="User")
            return found
        raise invalid(f'Cannot query field "{field.name}" on type "Query".')

    def _transcripts(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        unknown = set(args) - TRANSCRIPTS_ARGS
        if unknown:
            raise invalid(f'Unknown argument "{sorted(unknown)[0]}" on field "Query.transcripts".')
        limit = MAX_LIMIT if args.get("limit") is None else args["limit"]
        skip = 0 if args.get("skip") is None else args["skip"]
        if not isinstance(limit, int) or not 0 < limit <= MAX_LIMIT:
            raise bad_argument("limit", f"limit must be between 1 and {MAX_LIMIT}")
        if not isinstance(skip, int) or skip < 0:
            raise bad_argument("skip", "skip must not be less than 0")
        rows = sorted(self.transcripts, key=lambda t: (t["date"], t["id"]), reverse=True)
        if args.get("fromDate") is not None:
            since = parse_date("fromDate", args["fromDate"])
            rows = [t for t in rows if t["_at"] >= since]
        if args.get("toDate") is not None:
            until = parse_date("toDate", args["toDate"])
            rows = [t for t in rows if t["_at"] <= until]
        organizers = set(args.get("organizers") or []) | {
            args[k] for k in ("host_email", "organizer_email") if args.get(k)
        }
        participants = set(args.get("participants") or []) | (
            {args["participant_email"]} if args.get("participant_email") else set()
        )
        users = {u["user_id"]: u["email"] for u in self.users}
        if args.get("mine"):
            organizers.add(self.users[0]["email"])
        word = str(args.get("keyword") or args.get("title") or "").lower()
        rows = [
            t
            for t in rows
            if (not organizers or t["organizer_email"] in organizers)
            and (not participants or participants & set(t["participants"]))
            and (not args.get("user_id") or users.get(args["user_id"]) in t["participants"])
            and word in t["title"].lower()
        ]
        return rows[skip : skip + limit]
