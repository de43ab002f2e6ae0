"""The citizen conversation in a terminal: same services, same tickets, buttons as numbers."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import TextIO

from bot import tickets
from bot.conversation import CitizenInfo, Conversation
from bot.i18n import _, use_locale
from bot.models import Citizen
from bot.replies import Button, Outgoing
from bot.runtime import Runtime
from handlers.delivery import Delivery


class TerminalChat:
    def __init__(
        self,
        runtime: Runtime,
        conversation: Conversation,
        out: TextIO = sys.stdout,
        external_id: int | None = None,
    ) -> None:
        self.rt = runtime
        self.conversation = conversation
        self.out = out
        self.external_id = external_id if external_id is not None else os.getuid()
        self.buttons: list[Button] = []
        self.seen_staff_message = 0
        # Staff cards go to the outbox (delivered when the bot runs) only if a staff group is set.
        self.deliver_staff = Delivery(None)

    def _print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    async def _citizen(self, session) -> Citizen:
        info = CitizenInfo("terminal", self.external_id, self.external_id, _("终端用户"))
        return await self.conversation.citizen(session, info)

    def _show(
        self, items: list[Outgoing], citizen: Citizen, me: tuple[int, int] | None = None
    ) -> list[Outgoing]:
        """Print what is for the citizen (``me``: their chat and id, if they may have changed since);
        return what is for staff."""
        chat_id, citizen_id = me or (citizen.chat_id, citizen.id)
        staff: list[Outgoing] = []
        self.buttons = []
        for item in items:
            if item.chat_id != chat_id or item.citizen_id != citizen_id:
                staff.append(item)
                continue
            if item.reply is None:
                continue
            r = item.reply
            if r.header:
                self._print(f"【{r.header}】")
            self._print(r.text)
            if r.footer:
                self._print(f"（{r.footer}）")
            for row in r.buttons:
                for b in row:
                    self.buttons.append(b)
                    self._print(f"  [{len(self.buttons)}] {b.label}")
            self._print()
        return staff

    async def _staff_replies(self, session, citizen: Citizen) -> None:
        """Show staff answers that arrived since the last look (terminal citizens read them here)."""
        for m in await tickets.staff_answers_since(session, citizen.id, self.seen_staff_message):
            self.seen_staff_message = m.id
            self._print(f"【{_('工单 #{id} 工作人员回复', id=m.ticket_id)}】")
            self._print(m.text or f"[{m.kind}]")
            self._print()

    async def handle(self, line: str) -> bool:
        """One line from the citizen. Returns False when they want to quit."""
        text = line.strip()
        if text in ("/quit", "/exit", "quit", "exit"):
            return False
        async with self.rt.sf() as session:
            citizen = await self._citizen(session)
            me = (citizen.chat_id, citizen.id)  # /forget erases them from the row
            c = self.conversation
            if text in ("/start", "/help"):
                items = c.welcome(citizen)
            elif text == "/mytickets":
                items = await c.my_tickets(session, citizen)
            elif text == "/privacy":
                items = c.privacy(citizen.chat_id, citizen.id)
            elif text == "/forget":
                items = await c.forget_prompt(session, citizen)
            elif text == "/human":
                items = await c.human(session, citizen) or c.ask_what_to_forward(citizen)
            elif text.isdigit() and self.buttons and 1 <= int(text) <= len(self.buttons):
                items = await c.press(session, citizen, self.buttons[int(text) - 1])
            else:
                items = await c.ask(session, citizen, text)
            staff = self._show(items, citizen, me)
            await self.deliver_staff(session, staff if self.conversation.desk.staff_chat_id else [])
            await self._staff_replies(session, citizen)
        return True

    async def run(
        self, stdin: TextIO = sys.stdin, locale: str = "zh", on_start: Callable[[], None] | None = None
    ) -> int:
        with use_locale(locale):
            if on_start:
                on_start()
            async with self.rt.sf() as session:
                citizen = await self._citizen(session)
                self._show(self.conversation.welcome(citizen), citizen)
                # Earlier answers were seen in earlier runs; /mytickets shows their state.
                earlier = await tickets.staff_answers_since(session, citizen.id, 0)
                await session.commit()
            interactive = stdin.isatty()
            self.seen_staff_message = earlier[-1].id if earlier else 0
            while True:
                if interactive:
                    try:
                        line = await asyncio.to_thread(input, _("您的问题> "))
                    except EOFError:
                        break
                else:
                    line = stdin.readline()
                    if not line:
                        break
                    self._print(f"> {line.rstrip()}")
                if not await self.handle(line):
                    break
        return 0
