"""The studio's web server: a Starlette app on uvicorn, bound to 127.0.0.1, one token per run.

Why Starlette and uvicorn: a small, well-kept ASGI toolkit (routing, multipart uploads,
file responses, middleware) and the reference ASGI server, both pure Python wheels with
few dependencies, so the studio adds no compiled code and no framework of its own.

Every request must carry the run's token: ``?token=`` (the URL printed at start, as
Jupyter does), the ``X-Studio-Token`` header (the page's requests) or the cookie the
page gets when it is opened with the token (its audio players and download links).
The cookie is ``SameSite=Strict`` and ``HttpOnly``, and named after the port
(:func:`token_cookie`): cookies are shared by every port of a host, and two studios
side by side must not take each other's. ``SameSite`` does not tell ports apart, so
another page served from this host could send the cookie: the cookie alone opens
only reads (GET); a request that changes anything must carry the token itself,
which a page of another origin cannot read (the studio's page gets it in its HTML).
Anything else gets 403. No page may frame the studio's (``frame-ancestors 'none'``).

Bodies are counted as they arrive, whatever their ``Content-Length`` says (a chunked
request has none): an upload may hold :class:`~mm_browserfft.studio.workspace.Limits`'
``total_bytes``, a listening request 10 s of audio, any other request 1 MB; more is
answered 413. Decoding, inference and zipping run in worker threads, so one upload does
not stall the page's other requests.
"""

from __future__ import annotations

import hmac
import html
import io
import os
import pathlib
import secrets
import threading
import zipfile
from typing import Any, Dict, Optional, Tuple
from urllib.parse import quote

import numpy as np

from ..errors import BrowserFftError, InvalidInputError
from ..listen import NOISE_LABELS, ListeningOptions, read_listening_options
from .jobs import MIN_CLIPS_PER_LABEL, TEST_SPLIT, TrainingJob, read_report
from .workspace import Limits, StudioBusy, StudioError, StudioNotFound, StudioTooLarge, Workspace, safe_name

__all__ = ["create_app", "serve", "STATIC_DIR", "token_cookie"]

STATIC_DIR = pathlib.Path(__file__).with_name("static")
_MAX_LISTENERS = 8
_MAX_LISTEN_BODY = 4 * 48000 * 10  # 10 s of float32 at 48 kHz per request
_MAX_OTHER_BODY = 1024 * 1024  # JSON bodies
_MULTIPART_SLACK = 1024 * 1024  # an upload's part headers and boundaries, beyond its files' bytes
_SAFE_METHODS = ("GET", "HEAD")
_SECURITY_HEADERS = [(b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'"),
                     (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]  # fmt: skip
_STATUS = ((StudioBusy, 409), (StudioNotFound, 404), (StudioTooLarge, 413))


def token_cookie(port: Optional[int]) -> str:
    """The name of the token cookie of the studio on ``port``: ``mm_studio_token_<port>``."""
    return f"mm_studio_token_{port or 0}"


def _port_of(request) -> Optional[int]:
    server = request.scope.get("server")
    return server[1] if server else None


def _token_of(request) -> str:
    """The token a request carries: the header or the query, and for reads (GET) the cookie too."""
    carried = request.headers.get("x-studio-token") or request.query_params.get("token")
    if not carried and request.method in _SAFE_METHODS:
        carried = request.cookies.get(token_cookie(_port_of(request)))
    return carried or ""


def _body_limit(scope, limits: Limits) -> int:
    """The most body bytes a request to this path may send."""
    path = scope.get("path", "")
    if path.endswith("/clips"):
        return limits.total_bytes + _MULTIPART_SLACK
    if path.endswith("/listen"):
        return _MAX_LISTEN_BODY
    return _MAX_OTHER_BODY


def _text(body: Dict, key: str, default: str = "") -> str:
    """A JSON body's string field; :class:`StudioError` for any other type."""
    value = body.get(key, default)
    if not isinstance(value, str):
        raise StudioError(f"{key} must be a string, got {value!r}")
    return value


def _epochs(body: Dict) -> int:
    value = body.get("epochs", 30)
    if isinstance(value, bool) or not isinstance(value, int):
        raise StudioError(f"epochs must be a whole number, got {value!r}")
    return value


def _listening_settings(tflite: pathlib.Path) -> Optional[Dict]:
    """The listening settings ``train`` calibrated for the model (its sidecar), as a dict; None if there are none."""
    try:
        options = read_listening_options(tflite) if tflite.is_file() else None
    except BrowserFftError:  # an unreadable sidecar: the page keeps its own settings
        return None
    return None if options is None else options.as_dict()


def _file_stamp(path: pathlib.Path) -> Tuple[int, int, int]:
    """``(inode, size, mtime_ns)`` of a file: changes when a new model is exported over it."""
    info = path.stat()
    return info.st_ino, info.st_size, info.st_mtime_ns


def _attachment(filename: str) -> str:
    """A ``Content-Disposition`` for ``filename``, any characters (RFC 6266: an ASCII fallback and UTF-8)."""
    fallback = filename.encode("ascii", "replace").decode("ascii").replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=utf-8''{quote(filename)}"


class _Studio:
    """The state behind the routes: the workspace, training jobs, live recognisers."""

    def __init__(self, workspace: Workspace, limits: Limits) -> None:
        self.workspace, self.limits = workspace, limits
        self.jobs: Dict[str, TrainingJob] = {}
        self.listeners: Dict[str, Tuple[Tuple[int, int, int], object]] = {}  # key -> (model file stamp, Recognizer)
        self.lock = threading.Lock()  # jobs and listeners
        self.files_lock = threading.Lock()  # a project's folders: uploads and deletions, one at a time
        self.listen_lock = threading.Lock()  # one recogniser fed at a time

    def add_clips(self, name: str, label: Optional[str], uploads, *, from_folder: bool) -> Dict:
        """Keep an upload in project ``name`` (looked up again: it may have been deleted while the upload arrived)."""
        with self.files_lock:
            project = self.workspace.project(name)
            result = project.add_clips(label, uploads, limits=self.limits, from_folder=from_folder)
        return {**result, "project": self.summary(name)}

    def summary(self, name: str) -> Dict:
        project = self.workspace.project(name)
        labels = [{"name": label, "clips": project.clips(label), "noise": label in NOISE_LABELS}
                  for label in project.labels()]  # fmt: skip
        model = project.model_dir
        job = self.jobs.get(name)
        return {
            "name": name,
            "labels": labels,
            "model": {
                "tflite": (model / "model.tflite").is_file(),
                "tfjs": (model / "tfjs" / "model.json").is_file(),
                "report": read_report(model),
                "listening": _listening_settings(model / "model.tflite"),
            },
            "training": job.status() if job is not None else None,
        }

    def train(self, name: str, *, epochs: int, whole_model: bool, for_listening: bool) -> Dict:
        project = self.workspace.project(name)
        with self.lock:
            self.require_idle(name, "train again")
            labels = [label for label in project.labels() if project.clips(label)]
            if len(labels) < 2:
                raise StudioError("training needs clips of at least two labels")
            if not 1 <= epochs <= 500:
                raise StudioError(f"epochs must be in 1..500, got {epochs}")
            few = {label: n for label in labels if (n := len(project.clips(label))) < MIN_CLIPS_PER_LABEL}
            if few:
                raise StudioError(f"every label needs at least {MIN_CLIPS_PER_LABEL} clips to train ({TEST_SPLIT:.0%} of "
                                  "them test the model); " + ", ".join(f"{label!r} has {n}" for label, n in few.items()))
            self._drop_listeners(name)
            noise = next((project.data_dir / label for label in labels if label in NOISE_LABELS), None)
            job = TrainingJob(project.data_dir, project.model_dir, epochs=epochs, train_whole_model=whole_model,
                              partial_word_negatives=0.5 if for_listening else 0.0, labels=labels,
                              background_noise=noise if for_listening else None)  # fmt: skip
            self.jobs[name] = job
        return job.status()

    def listen(self, name: str, session: str, samples: np.ndarray, *, rate: int, options: Dict[str, Any]) -> Dict:
        """Feed ``samples`` to the project's recogniser for ``session``; returns what fired."""
        from ..listen import Recognizer

        project = self.workspace.project(name)
        tflite = project.model_dir / "model.tflite"
        if not tflite.is_file():
            raise StudioError(f"project {name!r} has no trained model yet")
        key = f"{name}\0{safe_name(session, what='session')}"
        wanted = ListeningOptions(**options)
        model = _file_stamp(tflite)
        with self.lock:
            stamp, recognizer = self.listeners.get(key, (None, None))
            if recognizer is None or stamp != model or recognizer.sample_rate != rate:  # a new model: a new stream
                if len(self.listeners) >= _MAX_LISTENERS:
                    self.listeners.pop(next(iter(self.listeners)))
                recognizer = Recognizer(os.fspath(tflite), sample_rate=rate, options=wanted)
                self.listeners[key] = (model, recognizer)
            elif recognizer.options != wanted:  # a slider moved: the stream goes on
                recognizer.set_options(wanted)
        with self.listen_lock:
            detections = recognizer.feed(samples)
        return {"detections": [d.as_dict() for d in detections]}

    def require_idle(self, name: str, action: str) -> None:
        """:class:`StudioBusy` (answered 409) while project ``name`` trains: its run reads the clips it listed until it ends."""
        job = self.jobs.get(name)
        if job is not None and job.state == "running":
            raise StudioBusy(f"project {name!r} is training: {action} when it has finished")

    def delete(self, name: str) -> None:
        """Delete a project: its training is stopped first and its listeners dropped."""
        project = self.workspace.project(name)
        with self.lock:
            job = self.jobs.pop(name, None)
            self._drop_listeners(name)
        if job is not None:
            job.cancel()
            job.wait(timeout=60)  # the child must not write the model back after the folder is gone
        with self.files_lock:
            self.workspace.delete_project(project.name)

    def delete_clip(self, name: str, label: str, clip: str) -> Dict:
        with self.files_lock:
            project = self.workspace.project(name)
            self.require_idle(project.name, "delete clips")
            project.delete_clip(label, clip)
        return self.summary(name)

    def _drop_listeners(self, name: str) -> None:
        self.listeners = {k: v for k, v in self.listeners.items() if not k.startswith(f"{name}\0")}


def create_app(workspace: "os.PathLike[str] | str", *, token: str, limits: Limits = Limits()):
    """The studio's ASGI app over ``workspace``, answering only requests that carry ``token``."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    studio = _Studio(Workspace(workspace), limits)

    class TokenGate:
        """403 without the token (:func:`_token_of`); 413 past the body limit (:func:`_body_limit`); security headers."""

        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] != "http":
                return await self.app(scope, receive, send)

            async def send_secured(message):
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), *_SECURITY_HEADERS]}
                await send(message)

            request = Request(scope)
            if not hmac.compare_digest(_token_of(request).encode(), token.encode()):
                what = "this request must carry the token itself" if request.cookies else "missing or wrong token"
                return await JSONResponse({"error": f"{what}: open the URL the studio printed"},
                                          status_code=403)(scope, receive, send_secured)  # fmt: skip
            limit = _body_limit(scope, limits)
            try:
                declared = int(request.headers.get("content-length") or 0)
            except ValueError:
                declared = 0
            too_large = StudioTooLarge(f"refused: the request's body is over {limit} bytes")
            if declared > limit:
                return await JSONResponse({"error": str(too_large)}, status_code=413)(scope, receive, send_secured)
            received = 0

            async def counted():
                nonlocal received
                message = await receive()
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large
                return message

            await self.app(scope, counted, send_secured)

    async def body_json(request) -> Dict:
        try:
            value = await request.json()
        except StudioTooLarge:
            raise
        except ValueError as exc:
            raise StudioError(f"the request body is not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise StudioError("the request body must be a JSON object")
        return value

    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")

    async def index(request):
        html_text = page.replace('<meta name="studio-token" content="">',
                                 f'<meta name="studio-token" content="{html.escape(token)}">')  # fmt: skip
        response = HTMLResponse(html_text, headers={"Cache-Control": "no-store"})
        response.set_cookie(token_cookie(_port_of(request)), token, httponly=True, samesite="strict")
        return response

    async def projects(request):
        if request.method == "POST":
            body = await body_json(request)
            words = body.get("words") or []
            if not isinstance(words, list):
                raise StudioError("words must be a list of labels")
            name = _text(body, "name")
            studio.workspace.create_project(name, words)
            return JSONResponse(studio.summary(name), status_code=201)
        return JSONResponse({"projects": studio.workspace.projects()})

    async def project(request):
        name = request.path_params["project"]
        if request.method == "DELETE":
            await run_in_threadpool(studio.delete, name)
            return JSONResponse({"deleted": name})
        return JSONResponse(studio.summary(name))

    async def labels(request):
        body = await body_json(request)
        studio.workspace.project(request.path_params["project"]).add_label(_text(body, "name"))
        return JSONResponse(studio.summary(request.path_params["project"]), status_code=201)

    async def upload(request):
        name = request.path_params["project"]
        studio.workspace.project(name)  # a missing project is named before the upload is read
        form = await request.form(max_files=limits.files, max_fields=16)
        label = request.query_params.get("label") or form.get("label") or None
        uploads = []
        for item in form.getlist("files"):
            if isinstance(item, str):
                continue
            content = await item.read(limits.file_bytes + 1)
            uploads.append((item.filename or "", content))  # a name with a path in it is refused, not rewritten
        await form.close()
        if not uploads:
            raise StudioError("no files in the upload (multipart field 'files')")
        result = await run_in_threadpool(studio.add_clips, name, label, uploads,
                                         from_folder=request.query_params.get("from_folder") == "1")  # fmt: skip
        return JSONResponse(result, status_code=201)

    async def clip(request):
        p = request.path_params
        if request.method == "DELETE":
            return JSONResponse(await run_in_threadpool(studio.delete_clip, p["project"], p["label"], p["name"]))
        return FileResponse(studio.workspace.project(p["project"]).clip_path(p["label"], p["name"]))

    async def train(request):
        name = request.path_params["project"]
        if request.method == "POST":
            body = await body_json(request)
            return JSONResponse(studio.train(name, epochs=_epochs(body), whole_model=bool(body.get("whole_model", False)),
                                             for_listening=bool(body.get("for_listening", True))), status_code=202)  # fmt: skip
        studio.workspace.project(name)
        job = studio.jobs.get(name)
        return JSONResponse(job.status() if job is not None else {"state": "none"})

    async def listen(request):
        q = request.query_params
        body = await request.body()
        if len(body) > _MAX_LISTEN_BODY or len(body) % 4:
            raise StudioError(f"listen takes float32 samples, at most {_MAX_LISTEN_BODY} bytes per request")
        try:
            defaults = ListeningOptions()
            options = {"overlap_factor": float(q.get("overlap", defaults.overlap_factor)),
                       "probability_threshold": float(q.get("threshold", defaults.probability_threshold)),
                       "suppression_ms": float(q.get("suppression_ms", defaults.suppression_ms))}  # fmt: skip
            rate = int(q.get("rate", 44100))
        except ValueError as exc:
            raise StudioError(f"bad listening option: {exc}") from exc
        samples = np.frombuffer(body, "<f4")
        return JSONResponse(await run_in_threadpool(studio.listen, request.path_params["project"],
                                                    q.get("session", "page"), samples, rate=rate, options=options))  # fmt: skip

    async def download(request):
        project = studio.workspace.project(request.path_params["project"])
        what, model = request.path_params["what"], project.model_dir
        files = {"tflite": model / "model.tflite", "labels": model / "labels.txt", "json": model / "model.json"}
        if what in files:
            if not files[what].is_file():
                raise StudioNotFound(f"no {what} yet: train the model first")
            return FileResponse(files[what], filename=f"{project.name}-{files[what].name}")
        folders = {"tfjs": (model / "tfjs", None), "report": (model, ("report.md", "report.json", "report_images"))}
        if what not in folders or not model.is_dir():
            raise StudioNotFound(f"nothing to download as {what!r}")
        content = await run_in_threadpool(_zip_folder, *folders[what])
        return Response(content, media_type="application/zip",
                        headers={"Content-Disposition": _attachment(f"{project.name}-{what}.zip")})  # fmt: skip

    async def refused(request, exc):
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
        return JSONResponse({"error": str(exc)}, status_code=status)

    async def failed(request, exc):
        return JSONResponse({"error": str(exc)}, status_code=500)

    routes = [
        Route("/", index),
        Route("/api/projects", projects, methods=["GET", "POST"]),
        Route("/api/projects/{project}", project, methods=["GET", "DELETE"]),
        Route("/api/projects/{project}/labels", labels, methods=["POST"]),
        Route("/api/projects/{project}/clips", upload, methods=["POST"]),
        Route("/api/projects/{project}/clips/{label}/{name}", clip, methods=["GET", "DELETE"]),
        Route("/api/projects/{project}/train", train, methods=["GET", "POST"]),
        Route("/api/projects/{project}/listen", listen, methods=["POST"]),
        Route("/api/projects/{project}/download/{what}", download),
        Mount("/static", StaticFiles(directory=STATIC_DIR)),
    ]
    return Starlette(routes=routes, middleware=[Middleware(TokenGate)],
                     exception_handlers={InvalidInputError: refused, BrowserFftError: failed})  # fmt: skip


def _zip_folder(root: pathlib.Path, keep: Optional[Tuple[str, ...]]) -> bytes:
    """The files under ``root`` (those under its entries named in ``keep``, if given), zipped."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and (keep is None or rel.parts[0] in keep):
                archive.write(path, rel.as_posix())
    return buffer.getvalue()


def serve(workspace: "os.PathLike[str] | str", *, host: str = "127.0.0.1", port: int = 8765,
          token: Optional[str] = None, limits: Limits = Limits(), ready=None) -> None:  # fmt: skip
    """Run the studio until interrupted; prints its URL (with the token) first.

    Args:
      workspace: the folder of projects.
      host: the address to bind: 127.0.0.1 unless told otherwise.
      port: the port (0: any free one).
      token: the token (default: a new random one).
      limits: what one upload may hold.
      ready: optional callable given the URL and the ``uvicorn.Server`` once the socket is bound
        (tests stop it with ``server.should_exit = True``).
    """
    import socket

    import uvicorn

    token = token or secrets.token_urlsafe(24)
    app = create_app(workspace, token=token, limits=limits)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    url = f"http://{host if ':' not in host else f'[{host}]'}:{sock.getsockname()[1]}/?token={token}"
    print(f"mm-browserfft studio: {url}\n  workspace {pathlib.Path(workspace).resolve()}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    if ready is not None:
        ready(url, server)
    server.run(sockets=[sock])
