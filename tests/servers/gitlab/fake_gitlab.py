"""A loopback GitLab: the REST v4 endpoints the server uses, as GitLab documents them.

Written from GitLab's API documentation (issues, notes, merge requests and their diffs, merge,
repository files, commits with ``actions``, branches, compare, pipelines, jobs, job traces):
``PRIVATE-TOKEN`` authentication (401 ``{"message": "401 Unauthorized"}``), role checks (403
``{"message": "403 Forbidden"}``), 404 ``{"message": "404 Project Not Found"}`` style bodies,
offset pagination with ``x-total`` / ``x-total-pages`` / ``x-next-page`` / ``x-prev-page`` /
``x-page`` / ``x-per-page`` and ``Link``; a stale ``last_commit_id`` answers 400 "You are
attempting to update a file that has changed since you started editing it."; a merge whose
``sha`` is not the source head answers 409 "SHA does not match HEAD of source branch"; a merge
request that is not open (or is a draft) 405 "Method Not Allowed"; one with conflicts 422
"Branch cannot be merged". Faults (429 with ``Retry-After``, 5xx) are injected per route.

Run it in a thread: ``with FakeGitlab() as fake: fake.url``.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

ROLES = {"guest": 10, "reporter": 20, "developer": 30, "maintainer": 40}


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Commit:
    id: str
    parent_ids: list[str]
    message: str
    author_name: str
    created_at: str
    files: dict[str, tuple[bytes, str]]  # path -> (content, last commit that changed it)


@dataclass
class Job:
    id: int
    name: str
    stage: str
    status: str
    trace: bytes = b""
    failure_reason: str | None = None


@dataclass
class Pipeline:
    id: int
    ref: str
    sha: str
    status: str
    jobs: list[Job]
    script: list[str] = field(default_factory=list)  # statuses each later read moves through
    created_at: str = "2025-01-01T00:00:00Z"


@dataclass
class Project:
    id: int
    path: str
    default_branch: str = "main"
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    mrs: dict[int, dict[str, Any]] = field(default_factory=dict)
    notes: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    pipelines: dict[int, Pipeline] = field(default_factory=dict)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def unified(old: bytes, new: bytes) -> str:
    """A GitLab-style diff body (hunks only, no ---/+++ header)."""
    a = old.decode(errors="replace").splitlines(keepends=True)
    b = new.decode(errors="replace").splitlines(keepends=True)
    lines = list(difflib.unified_diff(a, b, n=3))
    return "".join(lines[2:]) if lines else ""


class FakeGitlab:
    """The state and the HTTP server. Tokens map to (username, role)."""

    def __init__(self, tokens: dict[str, tuple[str, str]] | None = None) -> None:
        self.tokens = tokens or {}
        self.projects: dict[int, Project] = {}
        self.users = {"alice": 1, "bob": 2, "ci-bot": 3}
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        self.faults: list[tuple[str, re.Pattern[str], int, dict[str, str]]] = []
        #: called with (method, path) before a request is answered: a concurrent writer
        self.before: Callable[[str, str], None] | None = None
        #: seconds every answer waits, as a real GitLab's work and network take (benchmarks)
        self.latency_s = 0.0
        self.lock = threading.RLock()
        self._ids = iter(range(1000, 10**9))
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> FakeGitlab:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One segment per response: headers and body written apart meet the peer's
            # delayed ACK (40 ms a request on loopback).
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                return

            def _any(self) -> None:
                if fake.latency_s:
                    time.sleep(fake.latency_s)
                fake._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ------------------------------------------------------------------ set-up helpers
    def next_id(self) -> int:
        return next(self._ids)

    def add_project(self, path: str, files: dict[str, str] | None = None) -> Project:
        with self.lock:
            p = Project(id=len(self.projects) + 1, path=path)
            self.projects[p.id] = p
            sha = self._commit(p, [], {}, "Initial commit", files or {"README.md": "# app\n"})
            p.branches["main"] = sha
            return p

    def _commit(
        self,
        p: Project,
        parents: list[str],
        base: dict[str, tuple[bytes, str]],
        message: str,
        changes: dict[str, str | None],
        author: str = "alice",
    ) -> str:
        seed = f"{parents}{message}{sorted(changes.items())}{self.next_id()}"
        sha = hashlib.sha1(seed.encode()).hexdigest()
        files = dict(base)
        for path, content in changes.items():
            if content is None:
                files.pop(path, None)
            else:
                files[path] = (content.encode(), sha)
        p.commits[sha] = Commit(sha, parents, message, author, _now(), files)
        return sha

    def push(self, p: Project, branch: str, message: str, changes: dict[str, str | None]) -> str:
        """A commit made outside the server (a concurrent writer)."""
        with self.lock:
            head = p.branches[branch]
            sha = self._commit(p, [head], p.commits[head].files, message, changes)
            p.branches[branch] = sha
            return sha

    def branch(self, p: Project, name: str, ref: str = "main") -> None:
        with self.lock:
            p.branches[name] = p.branches[ref]

    def add_issue(
        self, p: Project, title: str, description: str = "", state: str = "opened"
    ) -> int:
        with self.lock:
            iid = len(p.issues) + 1
            p.issues[iid] = self._issue(p, iid, title, description, [], state)
            return iid

    def _issue(
        self, p: Project, iid: int, title: str, description: str, labels: list[str], state: str
    ) -> dict[str, Any]:
        return {
            "id": self.next_id(),
            "iid": iid,
            "project_id": p.id,
            "title": title,
            "description": description,
            "state": state,
            "labels": labels,
            "assignees": [],
            "author": {"id": 1, "username": "alice"},
            "created_at": _now(),
            "updated_at": _now(),
            "web_url": f"{self.url}/{p.path}/-/issues/{iid}",
        }

    def add_mr(
        self, p: Project, source: str, target: str = "main", title: str = "MR", **kw: Any
    ) -> int:
        with self.lock:
            iid = len(p.mrs) + 1
            p.mrs[iid] = {
                "id": self.next_id(),
                "iid": iid,
                "project_id": p.id,
                "title": title,
                "description": kw.get("description", ""),
                "state": "opened",
                "draft": kw.get("draft", False),
                "source_branch": source,
                "target_branch": target,
                "labels": [],
                "author": {"id": 1, "username": "alice"},
                "has_conflicts": kw.get("has_conflicts", False),
                "merge_commit_sha": None,
                "web_url": f"{self.url}/{p.path}/-/merge_requests/{iid}",
            }
            return iid

    def add_pipeline(
        self, p: Project, status: str, jobs: list[Job], script: list[str] | None = None
    ) -> Pipeline:
        with self.lock:
            pl = Pipeline(self.next_id(), "main", p.branches["main"], status, jobs, script or [])
            p.pipelines[pl.id] = pl
            return pl

    def fail(
        self,
        method: str,
        path_regex: str,
        status: int,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` matching requests answer ``status`` (GitLab's error body)."""
        with self.lock:
            for _ in range(times):
                self.faults.append((method.upper(), re.compile(path_regex), status, headers or {}))

    # ------------------------------------------------------------------ HTTP
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        split = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body: dict[str, Any] | None = None
        if raw:
            body = (
                json.loads(raw)
                if "json" in (h.headers.get("Content-Type") or "")
                else {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
            )
        method = h.command
        path = split.path
        with self.lock:
            self.requests.append((method, path, body))
        status, payload, headers = 200, None, {}
        try:
            with self.lock:
                fault = next((f for f in self.faults if f[0] == method and f[1].search(path)), None)
                if fault:
                    self.faults.remove(fault)
            if self.before is not None:
                self.before(method, path)
            if fault:
                text = {429: "429 Too Many Requests", 502: "502 Bad Gateway"}.get(
                    fault[2], f"{fault[2]} Error"
                )
                raise HttpError(fault[2], text, fault[3])
            user = self._auth(h)
            status, payload, headers = self._route(method, path, query, body or {}, user)
        except HttpError as exc:
            status, payload, headers = exc.status, {"message": exc.message}, exc.headers
        self._send(h, status, payload, headers)

    def _send(
        self, h: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str]
    ) -> None:
        if isinstance(payload, bytes):
            data, ctype = payload, "text/plain; charset=utf-8"
        else:
            data, ctype = json.dumps(payload).encode(), "application/json"
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)

    def _auth(self, h: BaseHTTPRequestHandler) -> tuple[str, str]:
        token = h.headers.get("PRIVATE-TOKEN") or ""
        if token not in self.tokens:
            raise HttpError(401, "401 Unauthorized")
        return self.tokens[token]

    @staticmethod
    def _need(user: tuple[str, str], role: str) -> None:
        if ROLES[user[1]] < ROLES[role]:
            raise HttpError(403, "403 Forbidden")

    def _page(
        self, path: str, query: dict[str, str], items: list[Any]
    ) -> tuple[int, Any, dict[str, str]]:
        page = max(int(query.get("page", 1)), 1)
        per = min(max(int(query.get("per_page", 20)), 1), 100)
        total = len(items)
        pages = max((total + per - 1) // per, 1)
        chunk = items[(page - 1) * per : page * per]
        headers = {
            "x-total": str(total),
            "x-total-pages": str(pages),
            "x-per-page": str(per),
            "x-page": str(page),
            "x-next-page": str(page + 1) if page < pages else "",
            "x-prev-page": str(page - 1) if page > 1 else "",
        }
        links = []
        for rel, num in (
            ("next", page + 1 if page < pages else None),
            ("first", 1),
            ("last", pages),
        ):
            if num:
                q = urlencode({**query, "page": num, "per_page": per})
                links.append(f'<{self.url}{path}?{q}>; rel="{rel}"')
        headers["Link"] = ", ".join(links)
        return 200, chunk, headers

    def _project(self, ident: str) -> Project:
        ident = unquote(ident)
        for p in self.projects.values():
            if ident in (str(p.id), p.path):
                return p
        raise HttpError(404, "404 Project Not Found")

    # ------------------------------------------------------------------ routes
    def _route(
        self, method: str, path: str, q: dict[str, str], body: dict[str, Any], user: tuple[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        if not path.startswith("/api/v4/"):
            raise HttpError(404, "404 Not Found")
        rest = path[len("/api/v4") :]
        if rest == "/user":
            return 200, {"id": self.users.get(user[0], 9), "username": user[0]}, {}
        if rest == "/users":
            name = q.get("username", "")
            return (
                200,
                ([{"id": self.users[name], "username": name}] if name in self.users else []),
                {},
            )
        m = re.match(r"^/projects/([^/]+)(/.*)?$", rest)
        if not m:
            raise HttpError(404, "404 Not Found")
        with self.lock:
            p = self._project(m.group(1))
            sub = m.group(2) or ""
            if sub == "" and method == "GET":
                return (
                    200,
                    {
                        "id": p.id,
                        "path_with_namespace": p.path,
                        "default_branch": p.default_branch,
                        "web_url": f"{self.url}/{p.path}",
                    },
                    {},
                )
            for pattern, handler in self._routes():
                mm = re.match(pattern, f"{method} {sub}")
                if mm:
                    return handler(p, q, body, user, *mm.groups())
        raise HttpError(404, "404 Not Found")

    def _routes(self) -> list[tuple[str, Any]]:
        return [
            (r"^GET /issues$", self._list_issues),
            (r"^POST /issues$", self._create_issue),
            (r"^GET /issues/(\d+)$", self._get_issue),
            (r"^PUT /issues/(\d+)$", self._update_issue),
            (r"^(GET|POST) /(issues|merge_requests)/(\d+)/notes$", self._notes),
            (r"^GET /(issues|merge_requests)/(\d+)/notes/(\d+)$", self._get_note),
            (r"^GET /merge_requests$", self._list_mrs),
            (r"^POST /merge_requests$", self._create_mr),
            (r"^GET /merge_requests/(\d+)$", self._get_mr),
            (r"^GET /merge_requests/(\d+)/diffs$", self._mr_diffs),
            (r"^PUT /merge_requests/(\d+)/merge$", self._merge),
            (r"^(GET|HEAD) /repository/files/(.+)$", self._file),
            (r"^POST /repository/commits$", self._create_commit),
            (r"^GET /repository/commits/([0-9a-f]+)$", self._get_commit),
            (r"^POST /repository/branches$", self._create_branch),
            (r"^GET /repository/branches/(.+)$", self._get_branch),
            (r"^GET /repository/compare$", self._compare),
            (r"^GET /pipelines$", self._list_pipelines),
            (r"^GET /pipelines/(\d+)$", self._get_pipeline),
            (r"^GET /pipelines/(\d+)/jobs$", self._pipeline_jobs),
            (r"^POST /pipelines/(\d+)/retry$", self._retry),
            (r"^GET /jobs/(\d+)/trace$", self._trace),
        ]

    # issues ------------------------------------------------------------
    def _list_issues(self, p: Project, q: dict[str, str], body: Any, user: Any) -> Any:
        items = list(p.issues.values())
        if q.get("state") in ("opened", "closed"):
            items = [i for i in items if i["state"] == q["state"]]
        if q.get("search"):
            terms = q["search"].lower().split()
            items = [
                i
                for i in items
                if all(t in f"{i['title']} {i['description']}".lower() for t in terms)
            ]
        if q.get("labels"):
            want = set(q["labels"].split(","))
            items = [i for i in items if want <= set(i["labels"])]
        items.sort(key=lambda i: i["updated_at"], reverse=True)
        return self._page(f"/api/v4/projects/{p.id}/issues", q, items)

    def _issue_of(self, p: Project, iid: str) -> dict[str, Any]:
        issue = p.issues.get(int(iid))
        if issue is None:
            raise HttpError(404, "404 Issue Not Found")
        return issue

    def _create_issue(self, p: Project, q: Any, body: dict[str, Any], user: Any) -> Any:
        self._need(user, "guest")
        if not body.get("title"):
            raise HttpError(400, "title is missing")
        iid = len(p.issues) + 1
        labels = [s for s in str(body.get("labels") or "").split(",") if s]
        p.issues[iid] = self._issue(
            p, iid, body["title"], body.get("description") or "", labels, "opened"
        )
        return 201, p.issues[iid], {}

    def _get_issue(self, p: Project, q: Any, body: Any, user: Any, iid: str) -> Any:
        return 200, self._issue_of(p, iid), {}

    def _update_issue(self, p: Project, q: Any, body: dict[str, Any], user: Any, iid: str) -> Any:
        self._need(user, "reporter")
        issue = self._issue_of(p, iid)
        for key in ("title", "description"):
            if key in body:
                issue[key] = body[key]
        labels = list(issue["labels"])
        for lab in str(body.get("add_labels") or "").split(","):
            if lab and lab not in labels:
                labels.append(lab)
        drop = set(str(body.get("remove_labels") or "").split(","))
        issue["labels"] = [lab for lab in labels if lab not in drop]
        if body.get("state_event") == "close":
            issue["state"] = "closed"
        elif body.get("state_event") == "reopen":
            issue["state"] = "opened"
        if "assignee_ids" in body:
            ids = body["assignee_ids"] or []
            names = {v: k for k, v in self.users.items()}
            issue["assignees"] = [{"id": i, "username": names[i]} for i in ids]
        issue["updated_at"] = _now()
        return 200, issue, {}

    def _notes(
        self,
        p: Project,
        q: dict[str, str],
        body: dict[str, Any],
        user: Any,
        method: str,
        kind: str,
        iid: str,
    ) -> Any:
        (self._issue_of(p, iid) if kind == "issues" else self._mr_of(p, iid))
        notes = p.notes.setdefault((kind, int(iid)), [])
        if method == "GET":
            ordered = notes if q.get("sort") == "asc" else list(reversed(notes))
            return self._page(f"/api/v4/projects/{p.id}/{kind}/{iid}/notes", q, ordered)
        self._need(user, "guest")
        if not body.get("body"):
            raise HttpError(400, "body is missing")
        note = {
            "id": self.next_id(),
            "body": body["body"],
            "author": {"id": self.users.get(user[0], 9), "username": user[0]},
            "created_at": _now(),
            "system": False,
        }
        notes.append(note)
        return 201, note, {}

    def _get_note(
        self, p: Project, q: Any, body: Any, user: Any, kind: str, iid: str, nid: str
    ) -> Any:
        for note in p.notes.get((kind, int(iid)), []):
            if note["id"] == int(nid):
                return 200, note, {}
        raise HttpError(404, "404 Note Not Found")

    # merge requests ------------------------------------------------------
    def _mr_of(self, p: Project, iid: str) -> dict[str, Any]:
        mr = p.mrs.get(int(iid))
        if mr is None:
            raise HttpError(404, "404 Merge Request Not Found")
        return mr

    def _mr_view(self, p: Project, mr: dict[str, Any]) -> dict[str, Any]:
        view = dict(mr)
        if mr["state"] == "opened":
            view["sha"] = p.branches.get(mr["source_branch"])
            status = (
                "conflict"
                if mr["has_conflicts"]
                else ("draft_status" if mr["draft"] else "mergeable")
            )
            view["detailed_merge_status"] = status
        else:
            view["sha"] = mr.get("sha")
            view["detailed_merge_status"] = "not_open"
        view["merge_status"] = (
            "can_be_merged" if view["detailed_merge_status"] == "mergeable" else "cannot_be_merged"
        )
        return view

    def _list_mrs(self, p: Project, q: dict[str, str], body: Any, user: Any) -> Any:
        items = [self._mr_view(p, m) for m in p.mrs.values()]
        if q.get("state") and q["state"] != "all":
            items = [m for m in items if m["state"] == q["state"]]
        for key in ("source_branch", "target_branch"):
            if q.get(key):
                items = [m for m in items if m[key] == q[key]]
        return self._page(f"/api/v4/projects/{p.id}/merge_requests", q, items)

    def _create_mr(self, p: Project, q: Any, body: dict[str, Any], user: Any) -> Any:
        self._need(user, "developer")
        for key in ("source_branch", "target_branch", "title"):
            if not body.get(key):
                raise HttpError(400, f"{key} is missing")
        if body["source_branch"] not in p.branches or body["target_branch"] not in p.branches:
            raise HttpError(404, "404 Branch Not Found")
        for mr in p.mrs.values():
            if (
                mr["state"] == "opened"
                and mr["source_branch"] == body["source_branch"]
                and mr["target_branch"] == body["target_branch"]
            ):
                raise HttpError(
                    409,
                    f"Another open merge request already exists for this source branch: !{mr['iid']}",
                )
        iid = self.add_mr(
            p,
            body["source_branch"],
            body["target_branch"],
            body["title"],
            description=body.get("description") or "",
        )
        p.mrs[iid]["labels"] = [s for s in str(body.get("labels") or "").split(",") if s]
        return 201, self._mr_view(p, p.mrs[iid]), {}

    def _get_mr(self, p: Project, q: Any, body: Any, user: Any, iid: str) -> Any:
        return 200, self._mr_view(p, self._mr_of(p, iid)), {}

    def _diffs(self, p: Project, old_sha: str, new_sha: str) -> list[dict[str, Any]]:
        old, new = p.commits[old_sha].files, p.commits[new_sha].files
        out = []
        for path in sorted(set(old) | set(new)):
            a, b = old.get(path), new.get(path)
            if a is not None and b is not None and a[0] == b[0]:
                continue
            out.append(
                {
                    "old_path": path,
                    "new_path": path,
                    "a_mode": "100644",
                    "b_mode": "100644",
                    "new_file": a is None,
                    "renamed_file": False,
                    "deleted_file": b is None,
                    "generated_file": False,
                    "diff": unified(a[0] if a else b"", b[0] if b else b""),
                }
            )
        return out

    def _ancestors(self, p: Project, sha: str) -> list[str]:
        seen, todo = [], [sha]
        while todo:
            cur = todo.pop(0)
            if cur in seen:
                continue
            seen.append(cur)
            todo.extend(p.commits[cur].parent_ids)
        return seen

    def _merge_base(self, p: Project, a: str, b: str) -> str:
        mine = set(self._ancestors(p, a))
        return next(s for s in self._ancestors(p, b) if s in mine)

    def _mr_diffs(self, p: Project, q: dict[str, str], body: Any, user: Any, iid: str) -> Any:
        mr = self._mr_view(p, self._mr_of(p, iid))
        head = mr["sha"] or p.branches[mr["source_branch"]]
        base = self._merge_base(p, p.branches[mr["target_branch"]], head)
        return self._page(
            f"/api/v4/projects/{p.id}/merge_requests/{iid}/diffs", q, self._diffs(p, base, head)
        )

    def _merge(self, p: Project, q: Any, body: dict[str, Any], user: Any, iid: str) -> Any:
        self._need(user, "developer")
        mr = self._mr_of(p, iid)
        if mr["state"] != "opened" or mr["draft"]:
            raise HttpError(405, "405 Method Not Allowed")
        head = p.branches[mr["source_branch"]]
        if body.get("sha") and body["sha"] != head:
            raise HttpError(409, "SHA does not match HEAD of source branch: " + head)
        if mr["has_conflicts"]:
            raise HttpError(422, "Branch cannot be merged")
        target = p.branches[mr["target_branch"]]
        base = self._merge_base(p, target, head)
        changes: dict[str, str | None] = {}
        for d in self._diffs(p, base, head):
            content = p.commits[head].files.get(d["new_path"])
            changes[d["new_path"]] = None if content is None else content[0].decode()
        msg = (
            body.get("merge_commit_message")
            or f"Merge branch '{mr['source_branch']}' into '{mr['target_branch']}'"
        )
        sha = self._commit(p, [target, head], p.commits[target].files, msg, changes, author=user[0])
        p.branches[mr["target_branch"]] = sha
        mr.update(state="merged", merge_commit_sha=sha, sha=head)
        if body.get("should_remove_source_branch"):
            p.branches.pop(mr["source_branch"], None)
        return 200, self._mr_view(p, mr), {}

    # repository ------------------------------------------------------------
    def _resolve(self, p: Project, ref: str) -> str:
        if ref in p.branches:
            return p.branches[ref]
        matches = [s for s in p.commits if s.startswith(ref)] if len(ref) >= 7 else []
        if len(matches) == 1:
            return matches[0]
        raise HttpError(404, "404 Commit Not Found")

    def _file(
        self, p: Project, q: dict[str, str], body: Any, user: Any, method: str, fpath: str
    ) -> Any:
        if not q.get("ref"):
            raise HttpError(400, "ref is missing")
        sha = self._resolve(p, q["ref"])
        path = unquote(fpath)
        if path not in p.commits[sha].files:
            raise HttpError(404, "404 File Not Found")
        content, last = p.commits[sha].files[path]
        blob = hashlib.sha1(content).hexdigest()
        meta = {
            "file_name": path.rsplit("/", 1)[-1],
            "file_path": path,
            "size": len(content),
            "encoding": "base64",
            "content_sha256": hashlib.sha256(content).hexdigest(),
            "ref": q["ref"],
            "blob_id": blob,
            "commit_id": sha,
            "last_commit_id": last,
        }
        headers = {
            "X-Gitlab-Blob-Id": blob,
            "X-Gitlab-Commit-Id": sha,
            "X-Gitlab-Last-Commit-Id": last,
            "X-Gitlab-File-Path": path,
            "X-Gitlab-Size": str(len(content)),
            "X-Gitlab-Ref": q["ref"],
        }
        return 200, {**meta, "content": base64.b64encode(content).decode()}, headers

    def _create_commit(self, p: Project, q: Any, body: dict[str, Any], user: Any) -> Any:
        self._need(user, "developer")
        branch = body.get("branch")
        if not branch or not body.get("commit_message") or not body.get("actions"):
            raise HttpError(400, "branch, commit_message, actions are missing")
        start = body.get("start_branch") or branch
        if start not in p.branches:
            raise HttpError(400, "You can only create or edit files when you are on a branch")
        if body.get("start_branch") and branch in p.branches:
            raise HttpError(400, f"A branch called '{branch}' already exists")
        head = p.branches[start]
        files = p.commits[head].files
        changes: dict[str, str | None] = {}
        for a in body["actions"]:
            action, path = a.get("action"), a.get("file_path")
            content = a.get("content")
            if content is not None and a.get("encoding") == "base64":
                content = base64.b64decode(content).decode()
            guarded = a.get("previous_path") if action == "move" else path
            if action == "create":
                if path in files:
                    raise HttpError(400, "A file with this name already exists")
                changes[path] = content or ""
            elif action in ("update", "delete", "move", "chmod"):
                if guarded not in files:
                    raise HttpError(400, "A file with this name doesn't exist")
                if a.get("last_commit_id") and a["last_commit_id"] != files[guarded][1]:
                    raise HttpError(
                        400,
                        "You are attempting to update a file that has changed since you started editing it.",
                    )
                if action == "update":
                    changes[path] = content or ""
                elif action == "delete":
                    changes[path] = None
                elif action == "move":
                    changes[guarded] = None
                    changes[path] = content if content is not None else files[guarded][0].decode()
            else:
                raise HttpError(400, "actions[0][action] does not have a valid value")
        sha = self._commit(
            p,
            [head],
            files,
            body["commit_message"],
            changes,
            author=body.get("author_name") or user[0],
        )
        p.branches[branch] = sha
        return 201, self._commit_view(p, sha), {}

    def _commit_view(self, p: Project, sha: str) -> dict[str, Any]:
        c = p.commits[sha]
        return {
            "id": c.id,
            "short_id": c.id[:8],
            "title": c.message.split("\n", 1)[0],
            "message": c.message,
            "author_name": c.author_name,
            "created_at": c.created_at,
            "parent_ids": c.parent_ids,
            "web_url": f"{self.url}/{p.path}/-/commit/{c.id}",
        }

    def _get_commit(self, p: Project, q: Any, body: Any, user: Any, sha: str) -> Any:
        return 200, self._commit_view(p, self._resolve(p, sha)), {}

    def _create_branch(self, p: Project, q: dict[str, str], body: dict[str, Any], user: Any) -> Any:
        self._need(user, "developer")
        name, ref = body.get("branch") or q.get("branch"), body.get("ref") or q.get("ref")
        if not name or not ref:
            raise HttpError(400, "branch and ref are missing")
        if name in p.branches:
            raise HttpError(400, "Branch already exists")
        p.branches[name] = self._resolve(p, ref)
        return 201, {"name": name, "commit": self._commit_view(p, p.branches[name])}, {}

    def _get_branch(self, p: Project, q: Any, body: Any, user: Any, name: str) -> Any:
        name = unquote(name)
        if name not in p.branches:
            raise HttpError(404, "404 Branch Not Found")
        return 200, {"name": name, "commit": self._commit_view(p, p.branches[name])}, {}

    def _compare(self, p: Project, q: dict[str, str], body: Any, user: Any) -> Any:
        a, b = self._resolve(p, q.get("from", "")), self._resolve(p, q.get("to", ""))
        base = a if q.get("straight") == "true" else self._merge_base(p, a, b)
        behind = set(self._ancestors(p, a))
        commits = [
            self._commit_view(p, s) for s in reversed(self._ancestors(p, b)) if s not in behind
        ]
        return (
            200,
            {
                "commit": self._commit_view(p, b),
                "commits": commits,
                "diffs": self._diffs(p, base, b),
                "compare_timeout": False,
                "compare_same_ref": a == b,
                "web_url": f"{self.url}/{p.path}/-/compare/{a}...{b}",
            },
            {},
        )

    # CI ------------------------------------------------------------------
    def _pipeline_view(self, p: Project, pl: Pipeline) -> dict[str, Any]:
        return {
            "id": pl.id,
            "iid": pl.id,
            "project_id": p.id,
            "status": pl.status,
            "ref": pl.ref,
            "sha": pl.sha,
            "source": "push",
            "created_at": pl.created_at,
            "updated_at": _now(),
            "web_url": f"{self.url}/{p.path}/-/pipelines/{pl.id}",
        }

    def _pipeline_of(self, p: Project, pid: str) -> Pipeline:
        pl = p.pipelines.get(int(pid))
        if pl is None:
            raise HttpError(404, "404 Not found")
        return pl

    def _list_pipelines(self, p: Project, q: dict[str, str], body: Any, user: Any) -> Any:
        items = [
            self._pipeline_view(p, pl) for pl in sorted(p.pipelines.values(), key=lambda x: -x.id)
        ]
        if q.get("status"):
            items = [i for i in items if i["status"] == q["status"]]
        if q.get("ref"):
            items = [i for i in items if i["ref"] == q["ref"]]
        return self._page(f"/api/v4/projects/{p.id}/pipelines", q, items)

    def _get_pipeline(self, p: Project, q: Any, body: Any, user: Any, pid: str) -> Any:
        pl = self._pipeline_of(p, pid)
        view = self._pipeline_view(p, pl)
        if pl.script:  # the pipeline runs on: each read sees the next state
            pl.status = pl.script.pop(0)
            for job in pl.jobs:
                if pl.status in ("success", "failed", "canceled"):
                    job.status = (
                        "success"
                        if job.status in ("running", "pending") and pl.status == "success"
                        else job.status
                    )
                elif job.status == "pending":
                    job.status = "running"
        return 200, view, {}

    def _pipeline_jobs(self, p: Project, q: dict[str, str], body: Any, user: Any, pid: str) -> Any:
        pl = self._pipeline_of(p, pid)
        items = [
            {
                "id": j.id,
                "name": j.name,
                "stage": j.stage,
                "status": j.status,
                "duration": 1.5,
                "failure_reason": j.failure_reason,
                "web_url": f"{self.url}/{p.path}/-/jobs/{j.id}",
            }
            for j in pl.jobs
        ]
        return self._page(f"/api/v4/projects/{p.id}/pipelines/{pid}/jobs", q, items)

    def _retry(self, p: Project, q: Any, body: Any, user: Any, pid: str) -> Any:
        self._need(user, "developer")
        pl = self._pipeline_of(p, pid)
        for job in pl.jobs:
            if job.status in ("failed", "canceled"):
                job.status, job.failure_reason = "pending", None
        pl.status = "running"
        pl.script = ["running", "success"]
        return 201, self._pipeline_view(p, pl), {}

    def _trace(self, p: Project, q: Any, body: Any, user: Any, jid: str) -> Any:
        self._need(user, "reporter")
        for pl in p.pipelines.values():
            for job in pl.jobs:
                if job.id == int(jid):
                    return 200, job.trace, {}
        raise HttpError(404, "404 Not found")
