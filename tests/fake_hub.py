"""A local fake of the Hugging Face Hub HTTP API, enough for ``create_repo``, ``create_branch``,
``create_commit`` (regular uploads) and ``snapshot_download``. Listens on 127.0.0.1 only, on a
free port; stops itself after ``lifetime`` seconds at the latest. Nothing here is a test.

Endpoints (as huggingface_hub calls them)::

    POST /api/repos/create                          {"name", "organization", "type", ...}
    POST /api/models/{repo}/branch/{branch}
    POST /api/validate-yaml
    POST /api/models/{repo}/preupload/{rev}         -> every file "regular"
    POST /api/models/{repo}/commit/{rev}            ndjson: header, file (base64)
    GET  /api/models/{repo}/revision/{rev}          model info (sha, siblings)
    GET  /api/models/{repo}/tree/{rev}              files (path, size, oid)
    HEAD/GET /{repo}/resolve/{rev}/{path}           X-Repo-Commit, ETag, Content-Length
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


def _blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    def __init__(self, lifetime: float = 60.0):
        self.repos: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.lifetime = lifetime
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, body: bytes = b"", headers: dict | None = None, ctype="application/json"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, code: int, obj, headers: dict | None = None):
                self._send(code, json.dumps(obj).encode(), headers)

            def _error(self, code: int, err: str, msg: str):
                self._json(code, {"error": msg}, {"X-Error-Code": err, "X-Error-Message": msg})

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def do_HEAD(self):
                self._route()

            def do_GET(self):
                self._route()

            def do_POST(self):
                self._route()

            def _route(self):
                url = urlsplit(self.path)
                parts = [unquote(p) for p in url.path.split("/") if p]
                with hub._lock:
                    hub.requests.append((self.command, url.path))
                body = self._body() if self.command == "POST" else b""
                try:
                    with hub._lock:
                        hub._dispatch(self, parts, body)
                except Exception as e:  # a bug in the fake: answer 500 instead of hanging the client
                    self._error(500, "Internal", f"{e.__class__.__name__}: {e}")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._timer = threading.Timer(lifetime, self._server.shutdown)
        self._timer.daemon = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeHub":
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- state -------------------------------------------------------------------------
    def _resolve(self, repo: str, rev: str) -> str | None:
        r = self.repos[repo]
        if rev in r["branches"]:
            return r["branches"][rev]
        return rev if rev in r["commits"] else None

    def files(self, repo: str, rev: str = "main") -> dict[str, bytes]:
        return dict(self.repos[repo]["commits"][self._resolve(repo, rev)])

    def _dispatch(self, h, parts: list[str], body: bytes) -> None:
        if h.command == "POST" and parts == ["api", "repos", "create"]:
            p = json.loads(body)
            repo = f"{p['organization']}/{p['name']}" if p.get("organization") else f"user/{p['name']}"
            if repo in self.repos:
                return h._json(409, {"error": "You already created this model repo", "url": f"{self.url}/{repo}"})
            empty = hashlib.sha1(repo.encode()).hexdigest()
            self.repos[repo] = {"private": p.get("visibility") == "private" or bool(p.get("private")),
                                "branches": {"main": empty}, "commits": {empty: {}}}
            return h._json(200, {"url": f"{self.url}/{repo}", "name": repo})
        if h.command == "POST" and parts == ["api", "validate-yaml"]:
            return h._json(200, {"errors": [], "warnings": []})
        if len(parts) >= 5 and parts[:2] == ["api", "models"]:
            repo, op, rest = f"{parts[2]}/{parts[3]}", parts[4], parts[5:]
            if repo not in self.repos:
                return h._error(404, "RepoNotFound", f"Repository not found: {repo}")
            r = self.repos[repo]
            rev = "/".join(rest) if op != "tree" else (rest[0] if rest else "main")
            if op == "branch" and h.command == "POST":
                if rev in r["branches"]:
                    return h._error(409, "BranchExists", "Reference already exists")
                r["branches"][rev] = r["branches"]["main"]
                return h._json(200, {})
            if op == "preupload" and h.command == "POST":
                files = json.loads(body)["files"]
                return h._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                               for f in files]})
            if op == "commit" and h.command == "POST":
                if rev not in r["branches"]:
                    return h._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                files = dict(r["commits"][r["branches"][rev]])
                for line in body.splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        v = item["value"]
                        files[v["path"]] = base64.b64decode(v["content"])
                    elif item["key"] != "header":
                        return h._error(400, "BadRequest", f"unsupported commit entry {item['key']}")
                sha = hashlib.sha1(json.dumps(sorted((k, _blob_oid(v)) for k, v in files.items())).encode()
                                   + r["branches"][rev].encode()).hexdigest()
                r["commits"][sha] = files
                r["branches"][rev] = sha
                return h._json(200, {"commitUrl": f"{self.url}/{repo}/commit/{sha}", "commitOid": sha})
            if op in ("revision", "tree") and h.command == "GET":
                sha = self._resolve(repo, rev)
                if sha is None:
                    return h._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                files = r["commits"][sha]
                if op == "revision":
                    return h._json(200, {"id": repo, "modelId": repo, "sha": sha, "private": r["private"],
                                         "siblings": [{"rfilename": p} for p in sorted(files)]})
                return h._json(200, [{"type": "file", "path": p, "size": len(d), "oid": _blob_oid(d)}
                                     for p, d in sorted(files.items())])
        if len(parts) >= 5 and parts[2] == "resolve" and h.command in ("GET", "HEAD"):
            repo, rev, path = f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:])
            if repo not in self.repos:
                return h._error(404, "RepoNotFound", f"Repository not found: {repo}")
            sha = self._resolve(repo, rev)
            if sha is None:
                return h._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            files = self.repos[repo]["commits"][sha]
            if path not in files:
                return h._error(404, "EntryNotFound", f"Entry not found: {path}")
            data = files[path]
            return h._send(200, data, {"X-Repo-Commit": sha, "ETag": f'"{_blob_oid(data)}"'},
                           ctype="application/octet-stream")
        return h._error(404, "NotFound", f"fake hub: no route for {h.command} /{'/'.join(parts)}")
