"""The pages of ``/web``: login and logout, runs and their reports, the playground, flows, and
keys with their usage. Server-rendered from the templates beside this module; the only scripts
are the two small files in ``static/`` (the playground's stream reader and the flow form).

Every page but the login page needs a session (see ``sessions``) when the server requires keys;
a visitor without one is sent to the login page, and an ``/web/...`` URL tells nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from rung import fmt
from rung.errors import RungError
from rung.runs import RunFolder, RunResults
from rung.serve.errors import ApiError
from rung.serve.state import ServeState
from rung.serve.web.sessions import COOKIE, WebSession, WebSessions

__all__ = ["WebPages"]

HERE = Path(__file__).parent
REPORT = "report.html"
#: the longest login form a browser sends: a key and a few fields
MAX_FORM_BYTES = 4096
#: pages are the server's own files and scripts; the report page (its own document, framed)
#: carries inline plotly and is served without this policy
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'self'; form-action 'self'; base-uri 'none'"
)
#: a session that stands for nobody, when the server asks no key
OPEN = WebSession(key="", key_id=None, name=None, admin=False, csrf="", started=0.0)


@dataclass(frozen=True)
class RunRow:
    name: str
    title: str
    created: str
    task: str
    n_test: int
    rungs: list[dict[str, str]]
    has_report: bool
    problem: str | None = None


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["usd"] = fmt.usd
    env.filters["ms"] = fmt.ms
    env.filters["when"] = lambda t: "–" if t is None else f"{t:%Y-%m-%d %H:%M} UTC"
    return env


class WebPages:
    def __init__(self, state: ServeState, sessions: WebSessions) -> None:
        self.state = state
        self.sessions = sessions
        self.env = _env()

    # -- plumbing -------------------------------------------------------------------------------

    def _page(
        self, name: str, session: WebSession | None, status: int = 200, **context: Any
    ) -> HTMLResponse:
        html = self.env.get_template(name).render(
            session=session, keys_required=self.state.config.auth.required, **context
        )
        return HTMLResponse(html, status, headers=_headers())

    async def _session(self, request: Request) -> WebSession | None:
        """The visitor's session, checked against the ledger (a revoked key logs out)."""
        if not self.state.config.auth.required:
            return OPEN
        cookie = request.cookies.get(COOKIE)
        session = self.sessions.get(cookie)
        if session is None or self.state.gate is None:
            return None
        try:
            await self.state.gate.identify(session.key)
        except ApiError:
            self.sessions.close(cookie)
            return None
        return session

    def _to_login(self, request: Request) -> Response:
        target = request.url.path
        return RedirectResponse(f"/web/login?next={quote(target)}", 303, headers=_headers())

    # -- login ----------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/web/runs", 303)

    async def login_form(self, request: Request) -> Response:
        return self._page("login.html", None, next=_next(request.query_params.get("next")))

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        target = _next(form.get("next"))
        key = form.get("key", "").strip()
        gate = self.state.gate
        if gate is None:
            return self._page("login.html", None, 503, error="the server is starting", next=target)
        if not key:
            return self._page(
                "login.html", None, 401, error="enter an API key (rk-...)", next=target
            )
        try:
            record = await gate.identify(key)
        except ApiError as e:
            return self._page("login.html", None, e.status, error=e.message, next=target)
        admins = self.state.config.web.admins
        cookie = self.sessions.open(
            key, record.id, record.name, record.id in admins or record.name in admins
        )
        response = RedirectResponse(target, 303, headers=_headers())
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=int(self.sessions.max_age_s),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    async def logout(self, request: Request) -> Response:
        cookie = request.cookies.get(COOKIE)
        session = self.sessions.get(cookie)
        form = await _form(request)
        # a logout posted from another site (no token) is ignored, as a forged form should be
        if session is not None and form.get("csrf") == session.csrf:
            self.sessions.close(cookie)
        response = RedirectResponse("/web/login", 303, headers=_headers())
        response.delete_cookie(COOKIE, path="/")
        return response

    # -- runs -----------------------------------------------------------------------------------

    def _run_folders(self) -> list[RunFolder]:
        root = self.state.runs_dir
        if not root.is_dir():
            return []
        folders = [
            RunFolder(p)
            for p in root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and RunFolder(p).results_path.is_file()
        ]
        folders.sort(key=lambda f: f.results_path.stat().st_mtime, reverse=True)
        return folders

    def _folder(self, name: str) -> RunFolder | None:
        # only names the listing shows: a path from the URL never walks out of runs_dir
        return next((f for f in self._run_folders() if f.path.name == name), None)

    async def runs(self, request: Request) -> Response:
        session = await self._session(request)
        if session is None:
            return self._to_login(request)
        rows = [_run_row(f) for f in self._run_folders()]
        return self._page(
            "runs.html", session, runs=rows, runs_dir=str(self.state.runs_dir), active="runs"
        )

    async def run(self, request: Request) -> Response:
        session = await self._session(request)
        if session is None:
            return self._to_login(request)
        folder = self._folder(request.path_params["name"])
        if folder is None:
            return self._page("missing.html", session, 404, what="run", active="runs")
        return self._page("run.html", session, run=_run_row(folder), active="runs")

    async def report(self, request: Request) -> Response:
        session = await self._session(request)
        if session is None:
            return self._to_login(request)
        folder = self._folder(request.path_params["name"])
        if folder is None or not (folder.path / REPORT).is_file():
            return self._page("missing.html", session, 404, what="report", active="runs")
        return FileResponse(
            folder.path / REPORT,
            media_type="text/html",
            headers={
                # its own origin: the report's scripts (plotly) run, but cannot read the page
                # that frames it, nor its CSRF token
                "Content-Security-Policy": "sandbox allow-scripts; frame-ancestors 'self'",
                "X-Frame-Options": "SAMEORIGIN",
                "Cache-Control": "no-store",
            },
        )

    # -- playground and flows -------------------------------------------------------------------

    async def playground(self, request: Request) -> Response:
        session = await self._session(request)
        if session is None:
            return self._to_login(request)
        models = [
            {"name": m.name, "model_id": m.model_id}
            for m in self.state.models.values()
            if m.can_generate
        ]
        return self._page(
            "playground.html",
            session,
            models=models,
            max_tokens=min(64, self.state.config.limits.max_output_tokens),
            active="playground",
        )

    async def flows_page(self, request: Request) -> Response:
        session = await self._session(request)
        if session is None:
            return self._to_login(request)
        forms = [
            {
                "name": info.name,
                "version": info.version,
                "description": info.description,
                "steps": info.steps,
                "inputs": [
                    {
                        "name": name,
                        "type": prop.get("type", "string"),
                        "description": prop.get("description", ""),
                        "default": prop.get("default"),
                        "required": name in info.inputs.get("required", []),
                    }
                    for name, prop in info.inputs.get("properties", {}).items()
                ],
            }
            for info in self.state.flows.list()
        ]
        return self._page("flows.html", session, flows=forms, active="flows")

    # -- keys and usage -------------------------------------------------------------------------

    async def keys(self, request: Request) -> Response:
        session = await self._session(request)
        if session is None:
            return self._to_login(request)
        if not session.admin:
            return self._page("forbidden.html", session, 403, active="keys")
        state = self.state
        assert state.gate is not None and state.ledger is not None
        await state.gate.flush()
        ledger = state.ledger

        def read() -> tuple[list[Any], Any, list[Any]]:
            records = ledger.list_keys(include_revoked=True)
            per_key = [(r, ledger.totals(r.id)) for r in records]
            return per_key, ledger.totals(), ledger.rows(limit=50)

        per_key, totals, recent = await ledger.run(read)
        return self._page(
            "keys.html",
            session,
            keys=per_key,
            totals=totals,
            recent=list(reversed(recent)),
            active="keys",
        )


def _headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def _next(target: str | None) -> str:
    """Where to go after logging in: a page of /web only (never another site)."""
    if target and target.startswith("/web/") and "//" not in target and "\\" not in target:
        return target
    return "/web/runs"


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def _run_row(folder: RunFolder) -> RunRow:
    has_report = (folder.path / REPORT).is_file()
    try:
        results: RunResults = folder.results()
    except RungError as e:
        return RunRow(folder.path.name, folder.path.name, "", "", 0, [], has_report, str(e))
    rungs = []
    for r in results.rungs:
        metrics = r.quality.metrics()
        primary = metrics.get(type(r.quality).primary)
        rungs.append(
            {
                "label": r.label,
                "model": r.model,
                "quality": (
                    f"{type(r.quality).primary} {primary.value:.3f}" if primary is not None else "–"
                ),
                "p50": fmt.ms(r.latency_ms.p50),
                "cost": fmt.usd(r.cost.usd_per_1k),
            }
        )
    return RunRow(
        name=folder.path.name,
        title=results.name or folder.path.name,
        created=results.created,
        task=results.task.type,
        n_test=results.task.n_test,
        rungs=rungs,
        has_report=has_report,
    )
