"""The web admin panel: an aiohttp application with server-rendered Jinja2 pages.

``create_web_app(settings, runtime)`` builds it (no global state: dependencies live in app
keys); ``start_web`` serves it next to the bot; ``python main.py web`` serves it alone.

Security, in one place (the middlewares below): every page but sign-in needs a live session
of an admin (checked against the database on each request, so sign-out, expiry and a disabled
account take effect at once); every POST carries the session's CSRF token (sign-in forms: a
double-submit cookie); templates autoescape everything; responses carry CSP, no framing and
no referrer. Cookies are HttpOnly, SameSite=Lax, and Secure with an https WEB_BASE_URL.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from multidict import MultiDict, MultiDictProxy

from bot import accounts, i18n
from bot.i18n import _
from bot.office_hours import OfficeHours
from bot.runtime import Runtime
from bot.settings import Settings

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
DEFAULT_PORT = 8080

SETTINGS = web.AppKey("settings", Settings)
RUNTIME = web.AppKey("runtime", Runtime)
JINJA = web.AppKey("jinja", jinja2.Environment)
HOURS = web.AppKey("hours", OfficeHours)
COOKIES = web.AppKey("cookies", dict)
WEB_SESSION = web.RequestKey("web_session", accounts.WebSession)
FORM = web.RequestKey("form", MultiDictProxy)
PRE_CSRF = web.RequestKey("pre_csrf", str)

PUBLIC_PREFIXES = ("/static/", "/signin", "/login/", "/healthz")
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --- helpers the pages use ---------------------------------------------------------


def settings_of(request: web.Request) -> Settings:
    return request.app[SETTINGS]


def runtime_of(request: web.Request) -> Runtime:
    return request.app[RUNTIME]


def actor_of(request: web.Request) -> str:
    return request[WEB_SESSION].principal.actor


def client_ip(request: web.Request) -> str:
    # The socket's peer only: X-Forwarded-For is whatever the client says it is.
    return request.remote or "?"


def form_of(request: web.Request) -> MultiDictProxy[Any]:
    """The POST form, already read (and CSRF-checked) by the middleware."""
    return request.get(FORM) or MultiDictProxy(MultiDict())


def field(request: web.Request, name: str, default: str = "") -> str:
    value = form_of(request).get(name, default)
    return value if isinstance(value, str) else default


def log_path(request: web.BaseRequest) -> str:
    """The path as logs may show it: a one-time link's token is a password and never written out."""
    return "/login/…" if request.path.startswith("/login/") else request.path


def redirect(location: str) -> web.Response:
    """303 See Other: after a POST the browser GETs the next page (no resubmission on reload)."""
    return web.Response(status=303, headers={"Location": location})


def safe_next(value: str | None) -> str:
    """Only a path on this site: never an absolute URL (no open redirect after sign-in)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/kb"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/kb"
    return value


def render(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    env = request.app[JINJA]
    ws = request.get(WEB_SESSION)
    html = env.get_template(template).render(
        request=request,
        ws=ws,
        me=ws.principal.actor if ws else None,
        csrf_token=ws.csrf_token if ws else request.get(PRE_CSRF, ""),
        path=request.path,
        **context,
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    return render(request, "error.html", status=status, title=title, message=message)


def _localtime(moment: dt.datetime | None, tz: ZoneInfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(tz).strftime(fmt)


def _environment(settings: Settings) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every template, whatever its name: user text is always escaped
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # The project's own gettext: Chinese msgids, {name} placeholders filled after translating.
    env.install_gettext_callables(i18n._, i18n.ngettext, newstyle=False)  # type: ignore[attr-defined]
    tz = ZoneInfo(settings.timezone)
    env.filters["localtime"] = lambda moment, fmt="%Y-%m-%d %H:%M": _localtime(moment, tz, fmt)
    env.globals["quote"] = lambda value: quote(str(value), safe="")
    return env


# --- cookies -----------------------------------------------------------------------


def _cookie_names(settings: Settings) -> dict[str, Any]:
    secure = settings.web_base_url.startswith("https://")
    # The __Host- prefix makes the browser refuse the cookie unless Secure, host-only, path /.
    prefix = "__Host-" if secure else ""
    return {"session": f"{prefix}hotline_session", "form": f"{prefix}hotline_form", "secure": secure}


def set_session_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    names = request.app[COOKIES]
    response.set_cookie(
        names["session"],
        value,
        httponly=True,
        samesite="Lax",
        secure=names["secure"],
        path="/",
        max_age=int(accounts.SESSION_LIFETIME.total_seconds()),
    )


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    names = request.app[COOKIES]
    response.del_cookie(names["session"], path="/", secure=names["secure"], samesite="Lax")


def _ensure_form_cookie(request: web.Request) -> str | None:
    """The sign-in forms' CSRF token (double submit): reuse the browser's, else make one."""
    names = request.app[COOKIES]
    current = request.cookies.get(names["form"])
    if current and 20 <= len(current) <= 100:
        request[PRE_CSRF] = current
        return None
    fresh = secrets.token_urlsafe(32)
    request[PRE_CSRF] = fresh
    return fresh


def _set_form_cookie(request: web.Request, response: web.StreamResponse, value: str | None) -> None:
    if value is None:
        return
    names = request.app[COOKIES]
    response.set_cookie(
        names["form"], value, httponly=True, samesite="Lax", secure=names["secure"], path="/", max_age=3600
    )


# --- middlewares -------------------------------------------------------------------


def _security_headers(response: web.StreamResponse, static: bool) -> None:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if not static:
        response.headers["Cache-Control"] = "no-store"


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: the locale, error pages (never a traceback in the browser), security headers."""
    with i18n.use_locale(request.app[SETTINGS].locale):
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                location = str(getattr(exc, "location", "") or "/")
                response = web.Response(status=exc.status, headers={"Location": location})
            elif exc.status == 404:
                message = _("没有这个页面，或它要找的内容已不存在。")
                response = error_page(request, 404, _("页面不存在"), message)
            elif exc.status == 405:
                response = error_page(request, 405, _("请求方式不对"), _("这个地址不接受这种请求。"))
            elif exc.status == 413:
                response = error_page(request, 413, _("文件太大"), _("上传的文件太大了。"))
            else:
                response = error_page(request, exc.status, _("请求未被接受"), exc.text or "")
        except Exception:
            # Logged with the path only: form fields may hold passwords or tokens.
            log.exception("web panel error on %s %s", request.method, log_path(request))
            response = error_page(request, 500, _("出错了"), _("服务器处理这个请求时出错，已记录日志。"))
        _security_headers(response, request.path.startswith("/static/"))
        return response


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every non-public page needs an admin's live session; every POST a valid CSRF token."""
    settings, rt = request.app[SETTINGS], request.app[RUNTIME]
    public = request.path.startswith(PUBLIC_PREFIXES)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            request[FORM] = await request.post()
        else:
            request[FORM] = MultiDictProxy(MultiDict())
    if public:
        new_form_cookie = _ensure_form_cookie(request)
        if FORM in request and not accounts.csrf_ok(request[PRE_CSRF], field(request, "csrf_token")):
            response = _csrf_refusal(request)
        else:
            response = await handler(request)
        _set_form_cookie(request, response, new_form_cookie)
        return response
    cookie = request.cookies.get(request.app[COOKIES]["session"])
    async with rt.sf() as session:
        ws = await accounts.load_session(session, cookie, settings.admin_ids)
        await session.commit()  # an expired or revoked session row is removed
    if ws is None:
        if request.method in ("GET", "HEAD"):
            return redirect("/signin?next=" + quote(request.path_qs, safe=""))
        return error_page(request, 403, _("请先登录"), _("只有管理员登录后才能进行这个操作。"))
    request[WEB_SESSION] = ws
    if FORM in request:
        given = field(request, "csrf_token") or request.headers.get("X-CSRF-Token", "")
        if not accounts.csrf_ok(ws.csrf_token, given):
            return _csrf_refusal(request)
    return await handler(request)


def _csrf_refusal(request: web.Request) -> web.Response:
    log.warning("CSRF check failed: %s %s from %s", request.method, log_path(request), client_ip(request))
    return error_page(
        request,
        403,
        _("请求被拒绝（表单校验失败）"),
        _("这个表单已过期，或不是从本站页面提交的。请返回上一页、刷新后再提交一次。"),
    )


# --- sign-in, one-time links, sign-out ---------------------------------------------


async def signin_page(request: web.Request) -> web.StreamResponse:
    next_url = safe_next(request.query.get("next"))
    return render(
        request, "signin.html", next_url=next_url, error=None, name="", signed_out="out" in request.query
    )


async def signin_post(request: web.Request) -> web.StreamResponse:
    rt = runtime_of(request)
    name, password = field(request, "name"), field(request, "password")
    next_url = safe_next(field(request, "next"))
    async with rt.sf() as session:
        result = await accounts.password_signin(session, name, password, client_ip(request))
        await session.commit()
    if result.reason == "rate_limited":
        minutes = int(accounts.FAILURE_WINDOW.total_seconds() // 60)
        error = _("登录失败次数过多，请 {m} 分钟后再试。", m=minutes)
        return render(
            request, "signin.html", status=429, next_url=next_url, error=error, name=name, signed_out=False
        )
    if not result.ok or result.cookie is None:
        error = _("用户名或密码不正确，或账户已停用。")
        return render(
            request, "signin.html", status=401, next_url=next_url, error=error, name=name, signed_out=False
        )
    response = redirect(next_url)
    set_session_cookie(request, response, result.cookie)
    return response


_LINK_MESSAGES = {
    "used": lambda: _("这个登录链接已经用过了。每个链接只能用一次。"),
    "expired": lambda: _("这个登录链接已过期（有效期 10 分钟）。"),
    "unknown": lambda: _("这个登录链接无效。"),
    "not_admin": lambda: _("这个账户没有管理员权限。"),
}


def _link_refused(request: web.Request, reason: str) -> web.Response:
    message = _LINK_MESSAGES.get(reason, _LINK_MESSAGES["unknown"])()
    hint = _("请在 Telegram 里向机器人发送 /web_login 获取新的登录链接，或用密码登录。")
    status = {"used": 410, "expired": 410, "not_admin": 403}.get(reason, 404)
    return render(request, "login_link.html", status=status, token=None, message=message, hint=hint)


async def login_link_page(request: web.Request) -> web.StreamResponse:
    """Shows a button; only the POST uses the link (a link preview that GETs it uses nothing)."""
    token = request.match_info["token"]
    async with runtime_of(request).sf() as session:
        state = await accounts.token_state(session, token)
    if state != "ok":
        return _link_refused(request, state)
    return render(request, "login_link.html", token=token, message=None, hint=None)


async def login_link_post(request: web.Request) -> web.StreamResponse:
    token = request.match_info["token"]
    rt = runtime_of(request)
    async with rt.sf() as session:
        result = await accounts.use_login_token(
            session, token, client_ip(request), settings_of(request).admin_ids
        )
        await session.commit()
    if not result.ok or result.cookie is None:
        return _link_refused(request, result.reason)
    response = redirect("/kb")
    set_session_cookie(request, response, result.cookie)
    return response


async def signout(request: web.Request) -> web.StreamResponse:
    cookie = request.cookies.get(request.app[COOKIES]["session"])
    async with runtime_of(request).sf() as session:
        await accounts.end_session(session, cookie)
        await session.commit()
    response = redirect("/signin?out=1")
    clear_session_cookie(request, response)
    return response


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


async def home(request: web.Request) -> web.StreamResponse:
    return redirect("/kb")


# --- the application ---------------------------------------------------------------


class AccessLogger(AbstractAccessLogger):
    """One line per request without secrets: a one-time link's token is never written out."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %s %.0fms",
            request.remote,
            request.method,
            log_path(request),
            response.status,
            time * 1000,
        )


def create_web_app(settings: Settings, runtime: Runtime) -> web.Application:
    from bot import web_pages

    app = web.Application(
        middlewares=[guard_middleware, auth_middleware], client_max_size=MAX_UPLOAD_BYTES
    )
    app[SETTINGS] = settings
    app[RUNTIME] = runtime
    app[JINJA] = _environment(settings)
    app[HOURS] = OfficeHours.parse(settings.office_hours, settings.timezone)
    app[COOKIES] = _cookie_names(settings)
    app.router.add_get("/", home)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/signin", signin_page)
    app.router.add_post("/signin", signin_post)
    app.router.add_get("/login/{token}", login_link_page)
    app.router.add_post("/login/{token}", login_link_post)
    app.router.add_post("/signout", signout)
    web_pages.add_routes(app)
    app.router.add_static("/static/", STATIC_DIR)
    return app


def listen_address(settings: Settings) -> tuple[str, int]:
    return settings.web_host or "127.0.0.1", settings.web_port or DEFAULT_PORT


async def start_web(settings: Settings, runtime: Runtime) -> web.AppRunner:
    """Serve the panel on WEB_HOST:WEB_PORT (127.0.0.1 and 8080 when unset); ``await
    runner.cleanup()`` stops it. The bot process calls it when WEB_PORT is set."""
    runner = web.AppRunner(create_web_app(settings, runtime), access_log_class=AccessLogger)
    await runner.setup()
    host, port = listen_address(settings)
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("web panel listening on %s:%s, links use %s", host, port, settings.web_base_url)
    return runner
