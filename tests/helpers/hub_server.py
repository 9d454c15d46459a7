"""A small Hugging Face Hub on 127.0.0.1 for the real huggingface_hub client (`HF_ENDPOINT`): the file endpoints
`hf_hub_download` calls and the ones `HfApi.create_repo` + `upload_folder` call, for repositories held in memory.

Files (huggingface_hub 2.4 `file_download.py` / `utils/_http.py` / `_commit_api.py`):

* `HEAD|GET /{org}/{repo}/resolve/{revision}/{file}`: `X-Repo-Commit` (40 hex) and `ETag` on every answer; a
  small file is answered in place (200, `Content-Length`); an LFS-sized one (`lfs=True`, as the Hub serves
  weights) is a 302 to `http://localhost:PORT/cdn/<sha256>` with `X-Linked-Etag` / `X-Linked-Size` (the client
  takes metadata from the redirect and fetches from the other host, as from the Hub's CDN);
* errors as the Hub gives them: unknown repository 401 + `X-Error-Code: RepoNotFound`, unknown revision 404
  `RevisionNotFound`, unknown file 404 `EntryNotFound` (with `X-Repo-Commit`);
* `GET /cdn/<sha256>` honours `Range: bytes=N-` (206); faults by file name: `cut_once` sends the full
  `Content-Length` and closes the connection half way, once (the client resumes with a Range request);
  `truncate` always sends half the bytes under a shorter `Content-Length` (the client's size check fails);
* `POST /api/repos/create`, `/api/validate-yaml`, `/api/models/{repo}/preupload/{rev}` (every file "regular":
  inline base64 in the commit, no LFS transfer) and `/api/models/{repo}/commit/{rev}` (ndjson): a commit becomes
  a new revision of `main` that the download endpoints then serve.

`requests` records (method, path, Range) of every request. Not a Hub: enough of one for these tests.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


def commit_sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


@dataclass
class Repo:
    revisions: dict[str, tuple[str, dict[str, bytes]]] = field(default_factory=dict)  # name -> (commit, files)
    private: bool = False

    def add_revision(self, files: dict[str, bytes], names: tuple[str, ...] = ("main",)) -> str:
        """A new commit holding `files`, reachable by its sha and by each of `names`; its sha."""
        digests = [hashlib.sha256(v).hexdigest() for v in files.values()]
        sha = commit_sha(f"{len(self.revisions)}:{sorted(files)}:{digests}")
        for name in (*names, sha):
            self.revisions[name] = (sha, dict(files))
        return sha


class HubServer:
    """`with HubServer() as hub:` ... `hub.endpoint` is the HF_ENDPOINT; `hub.repos[ORG/NAME]` the repositories."""

    def __init__(self, lfs_min_bytes: int = 1024):
        self.repos: dict[str, Repo] = {}
        self.lfs_min_bytes = lfs_min_bytes
        self.cut_once: set[str] = set()
        self.truncate: set[str] = set()
        self.requests: list[tuple[str, str, str | None]] = []
        self.blobs: dict[str, bytes] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (HubHandler,), {"hub": self}))
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HubServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def repo(self, repo_id: str) -> Repo:
        return self.repos.setdefault(repo_id, Repo())

    def gets(self, name: str) -> list[tuple[str, str, str | None]]:
        """The requests that fetched bytes of a file called `name` (through the CDN or in place)."""
        shas = {hashlib.sha256(d).hexdigest() for r in self.repos.values() for _, files in r.revisions.values()
                for n, d in files.items() if n.endswith(name)}
        return [r for r in self.requests if r[0] == "GET" and (r[1].endswith("/" + name) or
                                                               r[1].split("/")[-1] in shas)]


class HubHandler(BaseHTTPRequestHandler):
    """Answers for `hub` (set on the subclass `HubServer` makes)."""

    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, headers: dict, body: bytes = b"", head: bool = False) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, str(v))
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, doc, headers: dict | None = None) -> None:
        self._send(status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(doc).encode(),
                   head=self.command == "HEAD")

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_HEAD(self) -> None:
        self._get(head=True)

    def do_GET(self) -> None:
        self._get(head=False)

    def _get(self, head: bool) -> None:
        path = urlsplit(self.path).path
        self.hub.requests.append((self.command, path, self.headers.get("Range")))
        parts = path.strip("/").split("/")
        if parts[0] == "cdn":
            return self._blob(parts[1], head)
        if len(parts) < 5 or parts[2] != "resolve":
            return self._json(404, {"error": "not found"})
        repo_id, revision, name = "/".join(parts[:2]), unquote(parts[3]), unquote("/".join(parts[4:]))
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            return self._json(401, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        if revision not in repo.revisions:
            return self._json(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
        sha, files = repo.revisions[revision]
        if name not in files:
            return self._json(404, {"error": "Entry not found"},
                              {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": sha})
        data = files[name]
        digest = hashlib.sha256(data).hexdigest()
        if len(data) >= self.hub.lfs_min_bytes:  # as the Hub serves LFS files: a redirect to another host
            self.hub.blobs[digest] = data
            return self._send(302, {"Location": f"http://localhost:{self.hub.port}/cdn/{digest}",
                                    "X-Repo-Commit": sha, "X-Linked-Etag": f'"{digest}"',
                                    "X-Linked-Size": len(data), "ETag": '"redirect"', "Content-Length": 0},
                              head=True)
        git_etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        self._send(200, {"X-Repo-Commit": sha, "ETag": f'"{git_etag}"'}, data, head)

    def _blob(self, digest: str, head: bool) -> None:
        data = self.hub.blobs.get(digest)
        if data is None:
            return self._json(404, {"error": "no such blob"})
        names = {n for r in self.hub.repos.values() for _, fs in r.revisions.values() for n, d in fs.items()
                 if hashlib.sha256(d).hexdigest() == digest}
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        body = data[start:]
        status, headers = (206, {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}) if start \
            else (200, {})
        if not head and names & self.hub.truncate:
            return self._send(status, headers, body[: len(body) // 2])
        if not head and names & self.hub.cut_once:
            self.hub.cut_once -= names
            self.send_response(status)
            for k, v in {**headers, "Content-Length": len(body)}.items():
                self.send_header(k, str(v))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)  # the transfer breaks off
            return None
        self._send(status, headers, body, head)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        self.hub.requests.append(("POST", path, None))
        body = self._body()
        parts = path.strip("/").split("/")
        if path == "/api/repos/create":
            doc = json.loads(body)
            repo_id = f"{doc['organization']}/{doc['name']}" if doc.get("organization") else doc["name"]
            self.hub.repo(repo_id).private = bool(doc.get("private")) or doc.get("visibility") == "private"
            return self._json(200, {"url": f"{self.hub.endpoint}/{repo_id}", "name": repo_id})
        if path == "/api/validate-yaml":
            return self._json(200, {"warnings": []})
        if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] == "preupload":
            files = json.loads(body)["files"]
            return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                              for f in files]})
        if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] == "commit":
            return self._commit("/".join(parts[2:4]), unquote(parts[5]), body)
        return self._json(404, {"error": "not found"})

    def _commit(self, repo_id: str, revision: str, body: bytes) -> None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            return self._json(401, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        files = dict(repo.revisions.get(revision, ("", {}))[1])
        for line in body.splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
        sha = repo.add_revision(files, (revision,))
        self._json(200, {"commitUrl": f"{self.hub.endpoint}/{repo_id}/commit/{sha}", "commitOid": sha})
