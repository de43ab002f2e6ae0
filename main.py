"""Command line of the Wuding County civil-affairs hotline assistant.

python main.py start                 Telegram bot if BOT_TOKEN is set, else the terminal chat
python main.py run [--webhook]       the Telegram bot
python main.py chat                  talk to the assistant in the terminal, as a citizen
python main.py ask "问题" | ask --json -
python main.py kb import|export|validate PATH
python main.py db upgrade
python main.py privacy anonymise [--days N]
python main.py report [--week 2026-W47] [--out DIR] [--send]
python main.py web                   the web admin panel
python main.py admin add|list|disable|enable|password NAME
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_PROBLEM, EXIT_SETTINGS = 0, 1, 2


def _settings():
    from bot.settings import load_settings

    return load_settings()


def _run(coro_fn: Callable[..., Coroutine[Any, Any, int]], *args: Any) -> int:
    try:  # uvloop: a faster event loop (libuv), where it is available
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro_fn(*args))


# --- ask ---------------------------------------------------------------------------


def _print_readable(result: Any, facts: dict[str, str]) -> None:
    from bot.knowledge_service import render_answer

    print(f"outcome: {result.outcome}  (score {result.score:.3f}, {result.reason})")
    if result.entry is not None:
        print(f"entry:   {result.entry.id}  [{result.entry.topic}]")
        print()
        print(render_answer(result.entry.answer, facts))
        print()
        print(f"source:  {result.entry.source} ({result.entry.updated.isoformat()})")
    if result.candidates:
        print("candidates:")
        for c in result.candidates:
            print(f"  {c.score:.3f}  {c.entry_id:<28} {c.question}")


async def _ask(args: argparse.Namespace) -> int:
    from bot.knowledge_service import render_answer
    from bot.runtime import create_runtime

    settings = _settings()
    rt = await create_runtime(settings)
    try:
        facts = settings.bureau_facts()
        if args.question in (None, "-") or (args.json and args.question == "-"):
            # One JSON object per input line, whatever the line holds (bad UTF-8 included).
            for raw in sys.stdin.buffer:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                result = rt.knowledge.match(line)
                data = result.to_json()
                if result.entry is not None:
                    data["answer"] = render_answer(result.entry.answer, facts)
                if args.json:
                    print(json.dumps(data, ensure_ascii=False), flush=True)
                else:
                    _print_readable(result, facts)
                    print("-" * 40)
            return EXIT_OK
        result = rt.knowledge.match(args.question)
        if args.json:
            data = result.to_json()
            if result.entry is not None:
                data["answer"] = render_answer(result.entry.answer, facts)
            print(json.dumps(data, ensure_ascii=False))
        else:
            _print_readable(result, facts)
        return EXIT_OK
    finally:
        await rt.close()


# --- kb ----------------------------------------------------------------------------


def _kb_validate(args: argparse.Namespace) -> int:
    from knowledge.entries import load
    from knowledge.normalize import normalize

    bundle = load(args.path, question_key=normalize)
    for problem in bundle.problems:
        print(problem)
    n_q = sum(len(e.questions) for e in bundle.entries)
    status = "OK" if not bundle.problems else f"{len(bundle.problems)} problem(s)"
    print(f"{status}: {len(bundle.entries)} entries, {n_q} questions, {len(bundle.aliases)} alias terms")
    return EXIT_PROBLEM if bundle.problems else EXIT_OK


async def _kb_import(args: argparse.Namespace) -> int:
    from bot import kb_store
    from bot.runtime import create_runtime
    from knowledge.entries import load
    from knowledge.normalize import normalize

    bundle = load(args.path, question_key=normalize)
    if bundle.problems:
        for problem in bundle.problems:
            print(problem)
        print(f"not imported: {len(bundle.problems)} problem(s)")
        return EXIT_PROBLEM
    rt = await create_runtime(_settings(), seed=False)
    try:
        async with rt.sf() as session:
            report = await kb_store.import_bundle(session, bundle, author=args.author, note=args.note)
            await session.commit()
            if rt.notifier is not None:  # REDIS_URL: running instances rebuild now, not at their next poll
                await rt.notifier.publish(await kb_store.kb_version(session))
    finally:
        await rt.close()
    print(
        f"imported: {len(report.created)} new, {len(report.updated)} changed, "
        f"{len(report.unchanged)} unchanged, {report.aliases} alias terms"
    )
    return EXIT_OK


async def _kb_export(args: argparse.Namespace) -> int:
    from bot import kb_store
    from bot.runtime import create_runtime
    from knowledge.entries import export

    rt = await create_runtime(_settings())
    try:
        async with rt.sf() as session:
            entries = await kb_store.export_entries(session)
            aliases = await kb_store.aliases(session)
    finally:
        await rt.close()
    files = export(args.path, entries, aliases)
    print(f"exported {len(entries)} entries to {', '.join(str(f) for f in files)}")
    return EXIT_OK


async def _db_upgrade(_args: argparse.Namespace) -> int:
    from bot import db

    engine = db.create_engine(_settings().database_url)
    try:
        await db.upgrade(engine)
        print(f"database at revision {await db.current_revision(engine)}")
    finally:
        await engine.dispose()
    return EXIT_OK


# --- web panel and its accounts ----------------------------------------------------------


async def _web(settings: Any) -> int:
    """Serve the admin panel until SIGTERM/SIGINT, then close connections and the database."""
    import signal

    from bot.runtime import create_runtime
    from bot.web import listen_address, start_web

    host, port = listen_address(settings)
    rt = await create_runtime(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            runner = await start_web(settings, rt)
        except OSError as exc:
            print(f"error: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
            return EXIT_PROBLEM
        url = f"http://{host}:{port}/"
        print(f"web admin panel on {url} (sign-in links use {settings.web_base_url})", flush=True)
        await stop.wait()
        await runner.cleanup()
    finally:
        await rt.close()
    return EXIT_OK


def _cmd_web(args: argparse.Namespace) -> int:
    settings = _settings()
    _configure_logging(settings)
    return _run(_web, settings)


def _read_password() -> str | None:
    """Twice with getpass at a terminal; otherwise one line from stdin (for scripts)."""
    import getpass

    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            print("error: the two passwords differ", file=sys.stderr)
            return None
        return first
    line = sys.stdin.readline()
    return line.rstrip("\r\n") if line else None


async def _admin(args: argparse.Namespace) -> int:
    from bot import accounts, db

    password: str | None = None
    if args.admin_command in ("add", "password"):
        password = _read_password()
        if not password:
            print("error: no password given", file=sys.stderr)
            return EXIT_PROBLEM
    engine = db.create_engine(_settings().database_url)
    try:
        await db.upgrade(engine)
        async with db.session_factory(engine)() as session:
            if args.admin_command == "list":
                rows = await accounts.list_accounts(session)
                for a in rows:
                    state = "disabled" if a.disabled else "active"
                    last = a.last_signin_at.isoformat(timespec="minutes") if a.last_signin_at else "-"
                    tg = a.telegram_user_id if a.telegram_user_id is not None else "-"
                    print(f"{a.name:<20} {state:<8} telegram:{tg:<12} last sign-in: {last}")
                print(f"{len(rows)} account(s)")
                return EXIT_OK
            if args.admin_command == "add":
                await accounts.add_account(session, args.name, password, telegram_user_id=args.telegram_id)
                message = f"account {args.name} added"
            elif args.admin_command == "password":
                assert password is not None
                await accounts.set_password(session, args.name, password)
                message = f"password of {args.name} changed"
            else:
                disabled = args.admin_command == "disable"
                await accounts.set_disabled(session, args.name, disabled)
                message = f"account {args.name} {'disabled (its sessions ended)' if disabled else 'enabled'}"
            await session.commit()
    except accounts.AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    finally:
        await engine.dispose()
    print(message)
    return EXIT_OK


async def _privacy_anonymise(args: argparse.Namespace) -> int:
    """The retention pass on demand (the bot also runs it daily)."""
    from bot import db, kb_store, privacy

    settings = _settings()
    days = settings.retention_days if args.days is None else args.days
    if days < 0:
        print("error: --days must be 0 or more", file=sys.stderr)
        return EXIT_PROBLEM
    engine = db.create_engine(settings.database_url)
    try:
        await db.upgrade(engine)
        async with db.session_factory(engine)() as session:
            report = await privacy.apply_retention(session, days)
            # Its own action, so the daily job still runs with the configured period.
            await kb_store.audit(session, "cli", "privacy.retention.manual", f"days:{days}", **vars(report))
            await session.commit()
    finally:
        await engine.dispose()
    if days == 0:
        print("retention is off (0 days): only erased citizens' delivery records were cleaned")
    print(report.summary())
    return EXIT_OK


async def _report(args: argparse.Namespace) -> int:
    """The weekly report on demand: PNG chart and CSV written to --out; --send queues it for staff."""
    from bot import db, report_delivery, reports
    from bot.i18n import use_locale
    from bot.models import utcnow

    settings = _settings()
    week = args.week or reports.iso_week(utcnow() - dt.timedelta(days=7), settings.timezone)
    try:
        reports.week_bounds(week, settings.timezone)
    except ValueError:
        print(f"error: --week must look like 2026-W47, got {week!r}", file=sys.stderr)
        return EXIT_PROBLEM
    if args.send and settings.staff_chat_id is None:
        print("error: STAFF_CHAT_ID is not set, so there is no staff group to send to", file=sys.stderr)
        return EXIT_SETTINGS
    engine = db.create_engine(settings.database_url)
    try:
        await db.upgrade(engine)
        async with db.session_factory(engine)() as session:
            with use_locale(settings.locale):
                report, png, csv = await report_delivery.build(session, week, settings.timezone)
                if args.send:
                    assert settings.staff_chat_id is not None
                    await report_delivery.enqueue_report(session, settings.staff_chat_id, report, png, csv)
                    await session.commit()
                print(report_delivery.summary(report))
    finally:
        await engine.dispose()
    for path in report_delivery.write_files(report, png, csv, Path(args.out)):
        print(f"wrote {path}")
    if args.send:
        print("queued for the staff group: the running bot sends it")
    return EXIT_OK


# --- the assistant -------------------------------------------------------------------


def _configure_logging(settings: Any) -> None:
    from bot.logsafe import configure_logging

    # Masks ID-card, mobile and bank-card numbers in every line, exceptions included.
    configure_logging(settings.log_level, settings.log_format)


async def _run_bot(settings: Any, webhook: bool = False) -> int:
    from bot.app import create_app

    app = await create_app(settings)
    # What exists now (libraries, the knowledge index) lives as long as the process: keep it out
    # of the garbage collector's full passes, which otherwise pause every update for tens of ms.
    gc.collect()
    gc.freeze()
    if webhook:
        await app.run_webhook()
    else:
        await app.run_polling()
    return EXIT_OK


def _webhook_mode(settings: Any, asked: bool) -> bool:
    """``run --webhook`` or WEBHOOK_URL set; the webhook settings are checked before anything starts."""
    if not (asked or settings.webhook_url):
        return False
    from bot.webhook import check_settings

    check_settings(settings)
    return True


def _cmd_run(args: argparse.Namespace) -> int:
    from bot.settings import SettingsError

    settings = _settings()
    if not settings.bot_token:
        raise SettingsError("setting BOT_TOKEN is missing: create a bot with @BotFather and set BOT_TOKEN")
    webhook = _webhook_mode(settings, args.webhook)
    _configure_logging(settings)
    return _run(_run_bot, settings, webhook)


async def _chat(settings: Any, banner: str | None) -> int:
    from bot.conversation import Conversation
    from bot.office_hours import OfficeHours
    from bot.runtime import create_runtime
    from bot.tickets import StaffDesk
    from handlers.terminal import TerminalChat

    rt = await create_runtime(settings)
    try:
        hours = OfficeHours.parse(settings.office_hours, settings.timezone)
        desk = StaffDesk(settings.staff_chat_id, hours, settings.reminder_working_hours)
        conversation = Conversation(
            rt.knowledge, desk, settings.bureau_facts(), retention_days=settings.retention_days
        )
        chat = TerminalChat(rt, conversation)
        return await chat.run(
            sys.stdin, settings.locale, on_start=(lambda: print(banner)) if banner else None
        )
    finally:
        await rt.close()


def _cmd_chat(args: argparse.Namespace) -> int:
    return _run(_chat, _settings(), None)


def _cmd_start(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.bot_token:
        webhook = _webhook_mode(settings, False)
        _configure_logging(settings)
        return _run(_run_bot, settings, webhook)
    banner = (
        "BOT_TOKEN is not set: starting the terminal chat on the local database. "
        "To connect Telegram, set BOT_TOKEN (and STAFF_CHAT_ID) in .env and start again."
    )
    return _run(_chat, settings, banner)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotline", description="武定县民政局 citizen hotline assistant")
    sub = parser.add_subparsers(dest="command", required=True)

    start = sub.add_parser("start", help="the Telegram bot if BOT_TOKEN is set, else the terminal chat")
    start.set_defaults(func=_cmd_start)
    run = sub.add_parser("run", help="run the Telegram bot (long polling, or a webhook server)")
    run.add_argument(
        "--webhook",
        action="store_true",
        help="webhook server (also when WEBHOOK_URL is set); needs WEBHOOK_SECRET",
    )
    run.set_defaults(func=_cmd_run)
    chat = sub.add_parser("chat", help="talk to the assistant in the terminal, as a citizen")
    chat.set_defaults(func=_cmd_chat)

    ask = sub.add_parser("ask", help="ask the knowledge base a question")
    ask.add_argument("question", nargs="?", help="the question, or - to read one per line from stdin")
    ask.add_argument("--json", action="store_true", help="one JSON object per question")
    ask.set_defaults(func=lambda a: _run(_ask, a))

    kb = sub.add_parser("kb", help="knowledge base import / export / validate")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    v = kb_sub.add_parser("validate", help="check a YAML file or folder")
    v.add_argument("path", type=Path)
    v.set_defaults(func=_kb_validate)
    i = kb_sub.add_parser("import", help="import a YAML file or folder into the database")
    i.add_argument("path", type=Path)
    i.add_argument("--author", default="cli")
    i.add_argument("--note", default="YAML import")
    i.set_defaults(func=lambda a: _run(_kb_import, a))
    e = kb_sub.add_parser("export", help="export to a YAML file or a folder")
    e.add_argument("path", type=Path)
    e.set_defaults(func=lambda a: _run(_kb_export, a))

    dbp = sub.add_parser("db", help="database maintenance")
    db_sub = dbp.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations")
    up.set_defaults(func=lambda a: _run(_db_upgrade, a))

    pp = sub.add_parser("privacy", help="citizens' personal data")
    p_sub = pp.add_subparsers(dest="privacy_command", required=True)
    an = p_sub.add_parser("anonymise", help="anonymise closed tickets and idle citizens older than N days")
    an.add_argument("--days", type=int, default=None, help="default: RETENTION_DAYS (180)")
    an.set_defaults(func=lambda a: _run(_privacy_anonymise, a))
    rep = sub.add_parser("report", help="the weekly report (PNG chart + CSV) for an ISO week")
    rep.add_argument("--week", help="ISO week like 2026-W47 (default: last week)")
    rep.add_argument("--out", default=".", help="folder for the two files (default: here)")
    rep.add_argument("--send", action="store_true", help="also queue it for the staff group")
    rep.set_defaults(func=lambda a: _run(_report, a))
    web_p = sub.add_parser("web", help="serve the web admin panel (WEB_HOST, WEB_PORT)")
    web_p.set_defaults(func=_cmd_web)
    adm = sub.add_parser("admin", help="web panel admin accounts")
    adm_sub = adm.add_subparsers(dest="admin_command", required=True)
    add = adm_sub.add_parser("add", help="add an account (asks for the password; reads stdin when piped)")
    add.add_argument("name")
    add.add_argument("--telegram-id", type=int, default=None, help="link a Telegram user (for /web_login)")
    for cmd, text in (
        ("password", "set a new password"),
        ("disable", "disable an account and end its sessions"),
        ("enable", "enable a disabled account"),
    ):
        p = adm_sub.add_parser(cmd, help=text)
        p.add_argument("name")
    adm_sub.add_parser("list", help="list the accounts")
    adm.set_defaults(func=lambda a: _run(_admin, a))
    return parser


def main(argv: list[str] | None = None) -> int:
    from bot.settings import SettingsError

    args = build_parser().parse_args(argv)
    from bot.logsafe import configure_logging

    if not logging.getLogger().handlers:  # masked from the first line; `run` re-configures it
        configure_logging("WARNING")
    try:
        return int(args.func(args) or 0)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SETTINGS
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
