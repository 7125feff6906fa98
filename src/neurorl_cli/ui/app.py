"""The `neurorl ui` web application: pages and their JSON, every route a GET.

Read-only towards the user's data: no route changes or deletes a run. The one write is the
CLI's usual one, ingesting run logs into the registry (registry/ingest.py), done before a data
request when the last pass is older than `refresh_every` seconds, so the pages of running runs
follow their logs. Pages are small HTML shells; static/app.js draws them from the JSON routes
with plotly.js, served from the plotly package's own file (no network needed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from neurorl_cli.api import Registry
from neurorl_cli.errors import UserError
from neurorl_cli.ui import data, pages
from neurorl_cli.ui.analyses import Analyses
from neurorl_cli.ui.auth import TokenGate
from neurorl_cli.ui.downsample import MAX_POINTS

STATIC = files("neurorl_cli.ui") / "static"
POINTS_CAP = 5000  # the most points per line a page may ask for
REFRESH_EVERY = 2.0  # seconds between two ingests of the run logs


class Refresher:
    """Ingests run logs at most once per `every` seconds, one pass at a time."""

    def __init__(self, refresh: Callable[[], None] | None, every: float):
        self.refresh, self.every = refresh, every
        self._last = float("-inf")
        self._lock = threading.Lock()

    def __call__(self) -> None:
        if self.refresh is None:
            return
        with self._lock:
            if time.monotonic() - self._last >= self.every:
                self.refresh()
                self._last = time.monotonic()


def plotly_js() -> Path:
    """plotly.js as the plotly Python package ships it."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall plotly")
    return path


def create_app(registry: Registry, token: str, cookie: str = "neurorl-ui", refresh: Callable[[], None] | None = None,
               refresh_every: float = REFRESH_EVERY, folder: Path | None = None):
    """The ASGI application over `registry`, behind its token. `refresh` ingests the run logs;
    `folder` receives the figures it draws from the families' analyses."""
    import tempfile

    refresher = Refresher(refresh, refresh_every)
    analyses = Analyses(registry, Path(folder) if folder else Path(tempfile.mkdtemp(prefix="neurorl-ui-")))

    def api(produce: Callable[[Request], object]):
        # Starlette runs plain functions in its thread pool: a slow query never blocks the others.
        def endpoint(request: Request) -> Response:
            refresher()
            try:
                return JSONResponse(produce(request))
            except UserError as exc:
                return JSONResponse({"error": str(exc)}, status_code=404 if str(exc).startswith("no ") else 400)
        return endpoint

    def q(request: Request, name: str) -> str | None:
        return request.query_params.get(name) or None

    def listing(request: Request, fn):
        extra = {k: q(request, k) for k in ("task", "model", "status")}
        return fn(registry, **extra, sort=q(request, "sort") or "id", descending=q(request, "desc") == "1",
                  **({"tag": q(request, "tag"), "text": q(request, "q")} if fn is data.experiments
                     else {"experiment": q(request, "experiment")}))

    def points(request: Request) -> int:
        text = q(request, "points") or str(MAX_POINTS)
        if not text.isdigit() or not 3 <= int(text) <= POINTS_CAP:
            raise UserError(f"points={text}: a whole number from 3 to {POINTS_CAP}")
        return int(text)

    def curves(request: Request):
        key = q(request, "key")
        if key is None:
            raise UserError("key=...: which metric (the experiment's `keys`)")
        return data.curves(registry, request.path_params["ref"], key, points(request), number(request, "x0"), number(request, "x1"))

    def number(request: Request, name: str) -> float | None:
        text = q(request, name)
        try:
            return None if text is None else float(text)
        except ValueError:
            raise UserError(f"{name}={text}: a number (a step)") from None

    def analyses_of(request: Request):
        ref = request.path_params["ref"]
        return analyses.of(ref, data.experiment(registry, ref)["analyses_version"])

    def compare(request: Request):
        refs = [r for r in (q(request, "experiments") or "").split(",") if r]
        if not refs and q(request, "task") and q(request, "model"):
            refs = data.sweep_of(registry, q(request, "task"), q(request, "model"))
        group_by = request.query_params.get("group_by")
        return data.compare(registry, refs, q(request, "key"), None if group_by is None else group_by.split(","),
                            points(request))

    def figure(request: Request) -> Response:
        path = analyses.figure_file(int(request.path_params["id"]), request.path_params["name"])
        return FileResponse(path) if path else _missing()

    def stored(request: Request) -> Response:
        try:
            return FileResponse(data.artifact_file(registry, int(request.path_params["id"]), ("figure-png", "figure-csv", "gif")))
        except UserError:
            return _missing()

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "plotly.min.js":
            return FileResponse(plotly_js(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})
        if name not in ("app.js", "style.css"):
            return _missing()
        media = "text/javascript" if name.endswith(".js") else "text/css"
        return Response((STATIC / name).read_text(encoding="utf-8"), media_type=media)

    def page(kind: str):
        def endpoint(request: Request) -> HTMLResponse:
            return HTMLResponse(pages.shell(kind, request.path_params.get("ref")))
        return endpoint

    routes = [
        Route("/", page("experiments"), methods=["GET"]),
        Route("/runs", page("runs"), methods=["GET"]),
        Route("/matrix", page("matrix"), methods=["GET"]),
        Route("/compare", page("compare"), methods=["GET"]),
        Route("/e/{ref}", page("experiment"), methods=["GET"]),
        Route("/api/experiments", api(lambda r: listing(r, data.experiments)), methods=["GET"]),
        Route("/api/runs", api(lambda r: listing(r, data.runs)), methods=["GET"]),
        Route("/api/matrix", api(lambda r: data.matrix(registry)), methods=["GET"]),
        Route("/api/experiment/{ref}", api(lambda r: data.experiment(registry, r.path_params["ref"])), methods=["GET"]),
        Route("/api/experiment/{ref}/curves", api(curves), methods=["GET"]),
        Route("/api/experiment/{ref}/evaluations", api(lambda r: data.evaluations(registry, r.path_params["ref"])), methods=["GET"]),
        Route("/api/experiment/{ref}/analyses", api(analyses_of), methods=["GET"]),
        Route("/api/experiment/{ref}/watch", api(lambda r: data.watch(registry, r.path_params["ref"])), methods=["GET"]),
        Route("/api/compare", api(compare), methods=["GET"]),
        Route("/figures/e{id:int}/{name}", figure, methods=["GET"]),
        Route("/stored/{id:int}", stored, methods=["GET"]),
        Route("/static/{name}", static, methods=["GET"]),
    ]
    return TokenGate(Starlette(routes=routes), token, cookie)


def _missing() -> Response:
    return Response("404 Not Found\n", status_code=404, media_type="text/plain")
