"""The citizen's side of the conversation, for every channel (Telegram, terminal).

Takes plain values, returns ``Outgoing`` messages; the caller commits and hands them to the
outbox (Telegram) or prints them (terminal).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import privacy, tickets
from bot.i18n import _, lazy
from bot.knowledge_service import KnowledgeService, render_answer
from bot.models import Citizen, QueryLog, Ticket, utcnow
from bot.replies import Button, Outgoing, Reply, rows
from bot.tickets import StaffDesk
from knowledge.matcher import ANSWER, CLARIFY, MatchResult

# Topic menu: callback code → (label, knowledge-base topic).
TOPICS: dict[str, tuple[str, str]] = {
    "dibao": (lazy("低保"), "低保"),
    "tekun": (lazy("特困供养"), "特困供养"),
    "linshi": (lazy("临时救助"), "临时救助"),
    "yiliao": (lazy("医疗救助"), "医疗救助"),
    "xinxi": (lazy("信息公开申请"), "信息公开"),
    "lianxi": (lazy("联系与投诉"), "联系与投诉"),
}
HUMAN_WORDS = ("人工", "转人工", "人工服务", "找人工", "真人", "人工客服")
MAX_TOPIC_QUESTIONS = 8


@dataclass(frozen=True)
class CitizenInfo:
    channel: str
    external_id: int
    chat_id: int
    display_name: str
    username: str | None = None
    language: str | None = None


class Conversation:
    def __init__(
        self,
        knowledge: KnowledgeService,
        desk: StaffDesk,
        facts: dict[str, str],
        *,
        retention_days: int = privacy.DEFAULT_RETENTION_DAYS,
    ) -> None:
        self.knowledge = knowledge
        self.desk = desk
        self.facts = facts
        self.retention_days = retention_days

    # --- citizens -----------------------------------------------------------------

    async def citizen(self, session: AsyncSession, info: CitizenInfo) -> Citizen:
        row = await session.scalar(
            select(Citizen).where(Citizen.channel == info.channel, Citizen.external_id == info.external_id)
        )
        if row is None:
            row = Citizen(
                channel=info.channel,
                external_id=info.external_id,
                chat_id=info.chat_id,
                display_name=info.display_name[:200],
                username=info.username,
                language=info.language,
            )
            session.add(row)
            await session.flush()
            row.fresh = True
        else:
            if row.anonymized_at is None:
                row.display_name = info.display_name[:200] or row.display_name
                row.username = info.username
            row.chat_id = info.chat_id
            if row.unreachable_at is not None:
                row.unreachable_at = None  # they wrote to us, so they unblocked the bot
        return row

    def _to(self, citizen: Citizen, reply: Reply) -> Outgoing:
        return Outgoing(citizen.chat_id, reply, citizen_id=citizen.id)

    # --- menus --------------------------------------------------------------------

    def welcome(self, citizen: Citizen) -> list[Outgoing]:
        text = _(
            "您好！我是武定县民政局便民服务热线的智能助手。\n\n"
            "我可以解答：低保、特困人员救助供养、临时救助、医疗救助等社会救助政策，"
            "以及怎么申请、去哪里办、要带什么材料、政府信息公开申请等问题。\n"
            "我不能：办理具体业务、查询个人审批进度或改动任何申请。\n\n"
            "请直接用一句话输入您的问题，例如：“低保怎么申请？”。\n"
            "需要人工服务，请发送“人工”或 /human，工作人员会在这里回复您。"
        )
        return [self._to(citizen, Reply(text, buttons=self.topic_buttons()))]

    def topic_buttons(self) -> tuple[tuple[Button, ...], ...]:
        buttons = [Button(_(label), "topic", (code,)) for code, (label, _topic) in TOPICS.items()]
        return rows(*buttons, per_row=2)

    async def topic_questions(self, session: AsyncSession, citizen: Citizen, code: str) -> list[Outgoing]:
        if code not in TOPICS:
            return [
                self._to(citizen, Reply(_("这个栏目已不存在，请重新选择："), buttons=self.topic_buttons()))
            ]
        label, topic = TOPICS[code]
        entries = [e for e in self.knowledge.index.entries if e.topic == topic]
        if not entries:
            return [self._to(citizen, Reply(_("这个栏目暂时没有内容，请直接输入您的问题。")))]
        # Most asked first: how often each entry was answered in the last 90 days.
        since = utcnow() - dt.timedelta(days=90)
        counts = dict(
            (
                await session.execute(
                    select(QueryLog.entry_id, func.count())
                    .where(QueryLog.entry_id.in_([e.id for e in entries]), QueryLog.at >= since)
                    .group_by(QueryLog.entry_id)
                )
            ).all()
        )
        order = {e.id: i for i, e in enumerate(entries)}
        entries.sort(key=lambda e: (-counts.get(e.id, 0), order[e.id]))
        buttons = [Button(e.questions[0], "answer", (e.id, 0)) for e in entries[:MAX_TOPIC_QUESTIONS]]
        return [
            self._to(
                citizen,
                Reply(_("【{topic}】常见问题，点选即可查看：", topic=_(label)), buttons=rows(*buttons)),
            )
        ]

    # --- questions ----------------------------------------------------------------

    async def _log(self, session: AsyncSession, citizen: Citizen, text: str, result: MatchResult) -> QueryLog:
        row = QueryLog(
            citizen_id=citizen.id,
            channel=citizen.channel,
            question=text[:4000],
            outcome=result.outcome,
            entry_id=result.entry.id if result.entry else None,
            score=float(result.score),
        )
        session.add(row)
        await session.flush()
        return row

    def answer_reply(self, entry_id: str, query_id: int) -> Reply | None:
        entry = self.knowledge.entry(entry_id)
        if entry is None:
            return None
        body = render_answer(entry.answer, self.facts)
        if entry.topic == "寒暄":
            return Reply(body)
        footer = _("来源：{source}（信息截至 {date}）", source=entry.source, date=entry.updated.isoformat())
        buttons = (
            (Button(_("有帮助"), "feedback", (query_id, 1)), Button(_("没解决"), "feedback", (query_id, 0))),
        )
        return Reply(body, footer=footer, buttons=buttons)

    async def ask(self, session: AsyncSession, citizen: Citizen, text: str) -> list[Outgoing]:
        """A citizen's text message."""
        text = (text or "").strip()
        open_ticket = None if citizen.fresh else await tickets.open_ticket_for(session, citizen.id)
        if open_ticket is not None:
            return await self.follow_up(session, citizen, open_ticket, text=text, kind="text")
        if text.replace(" ", "") in HUMAN_WORDS:
            return await self.human(session, citizen)
        result = self.knowledge.match(text)
        log_row = await self._log(session, citizen, text, result)
        if result.outcome == ANSWER and result.entry is not None:
            if result.entry.topic != "寒暄":
                citizen.last_question = text[:4000]
            reply = self.answer_reply(result.entry.id, log_row.id)
            return [self._to(citizen, reply)] if reply else []
        if result.outcome == CLARIFY:
            if result.candidates:
                citizen.last_question = text[:4000]
                buttons = [
                    Button(c.question, "answer", (c.entry_id, log_row.id)) for c in result.candidates[:3]
                ]
                buttons.append(Button(_("都不是，转人工"), "clarify_none", (log_row.id,)))
                return [self._to(citizen, Reply(_("您是想问："), buttons=rows(*buttons)))]
            return [
                self._to(
                    citizen,
                    Reply(
                        _(
                            "抱歉，我没有看懂您的意思。请用一句话描述您的问题，例如：“低保怎么申请？”“临时救助要带什么材料？”"
                        )
                    ),
                )
            ]
        citizen.last_question = text[:4000]
        return await self.escalate(session, citizen, text, source="escalate", result=result, log_row=log_row)

    async def escalate(
        self,
        session: AsyncSession,
        citizen: Citizen,
        question: str,
        *,
        source: str,
        result: MatchResult | None = None,
        log_row: QueryLog | None = None,
    ) -> list[Outgoing]:
        """Create a ticket (stored with the caller's commit) and tell the citizen and the staff group."""
        existing = await tickets.open_ticket_for(session, citizen.id)
        if existing is not None:
            return [
                self._to(
                    citizen,
                    Reply(
                        _(
                            "您的问题已在工单 #{id} 中，工作人员会在这里回复您。有补充可以直接发送。",
                            id=existing.id,
                        )
                    ),
                )
            ]
        result = result or self.knowledge.match(question)
        candidates = [f"{c.entry_id} ({c.score:.2f})" for c in result.candidates[:3]]
        topic = result.candidates[0].topic if result.candidates else None
        ticket = await tickets.create(
            session, citizen, question, source=source, candidates=candidates, topic=topic
        )
        if log_row is not None:
            log_row.ticket_id = ticket.id
        text = _("已为您转接人工服务，工单编号 #{id}。工作人员会在这里回复您。", id=ticket.id)
        text += "\n" + self.desk.expected_reply()
        text += "\n" + _("如有补充（文字、图片、文件），直接发送即可。")
        return [self._to(citizen, Reply(text)), *self.desk.card_out(ticket, citizen, new=True)]

    async def follow_up(
        self,
        session: AsyncSession,
        citizen: Citizen,
        ticket: Ticket,
        *,
        text: str,
        kind: str,
        file_id: str | None = None,
        copy_from: tuple[int, int] | None = None,
    ) -> list[Outgoing]:
        """A further message while a ticket is open: it joins the ticket and reaches staff."""
        await tickets.add_message(
            session,
            ticket,
            direction="citizen",
            author=citizen.display_name,
            author_id=citizen.external_id,
            kind=kind,
            text=text,
            file_id=file_id,
        )
        out: list[Outgoing] = []
        staff = self.desk.staff_chat_id
        if staff is not None:
            header = _("工单 #{id} 市民补充（{name}）", id=ticket.id, name=citizen.display_name)
            if copy_from is not None:
                caption = f"【{header}】" + (f"\n{text}" if text else "")
                out.append(
                    Outgoing(
                        staff, copy_from=copy_from, caption=caption, ticket_id=ticket.id, link_kind="forward"
                    )
                )
            else:
                out.append(
                    Outgoing(staff, Reply(text, header=header), ticket_id=ticket.id, link_kind="forward")
                )
        out.append(self._to(citizen, Reply(_("已补充到工单 #{id}，工作人员会在这里回复您。", id=ticket.id))))
        return out

    async def media(
        self,
        session: AsyncSession,
        citizen: Citizen,
        *,
        kind: str,
        caption: str,
        file_id: str | None,
        copy_from: tuple[int, int] | None,
    ) -> list[Outgoing]:
        """A photo, document, voice … : part of an open ticket, otherwise ask for text."""
        ticket = await tickets.open_ticket_for(session, citizen.id)
        if ticket is not None and copy_from is not None:
            return await self.follow_up(
                session, citizen, ticket, text=caption, kind=kind, file_id=file_id, copy_from=copy_from
            )
        return [
            self._to(
                citizen,
                Reply(
                    _(
                        "抱歉，我只能看懂文字。请用文字输入您的问题，例如：“低保怎么申请？”。需要人工服务请发送“人工”。"
                    )
                ),
            )
        ]

    async def human(self, session: AsyncSession, citizen: Citizen) -> list[Outgoing]:
        """/human: hand the last question to staff, or ask what to forward (returns [] then)."""
        ticket = await tickets.open_ticket_for(session, citizen.id)
        if ticket is not None:
            return [
                self._to(
                    citizen,
                    Reply(
                        _(
                            "您的问题已在工单 #{id} 中，工作人员会在这里回复您。有补充可以直接发送。",
                            id=ticket.id,
                        )
                    ),
                )
            ]
        if citizen.last_question:
            question, citizen.last_question = citizen.last_question, None
            return await self.escalate(session, citizen, question, source="human")
        return []

    def ask_what_to_forward(self, citizen: Citizen) -> list[Outgoing]:
        return [self._to(citizen, Reply(_("请输入您要咨询的问题，我会转给工作人员（发送 /cancel 取消）。")))]

    async def pick(
        self, session: AsyncSession, citizen: Citizen, entry_id: str, query_id: int
    ) -> list[Outgoing]:
        """A candidate or topic question button: answer that entry."""
        entry = self.knowledge.entry(entry_id)
        if entry is None:
            return [self._to(citizen, Reply(_("这条内容已更新或下线，请重新输入您的问题。")))]
        question = entry.questions[0]
        log_row = QueryLog(
            citizen_id=citizen.id,
            channel=citizen.channel,
            question=question,
            outcome=ANSWER,
            entry_id=entry.id,
            score=1.0,
        )
        session.add(log_row)
        await session.flush()
        if query_id:
            original = await session.get(QueryLog, query_id)
            if original is not None and original.citizen_id == citizen.id:
                original.entry_id = original.entry_id or entry.id
        citizen.last_question = question
        reply = self.answer_reply(entry.id, log_row.id)
        return [self._to(citizen, reply)] if reply else []

    async def feedback(
        self, session: AsyncSession, citizen: Citizen, query_id: int, helpful: bool
    ) -> list[Outgoing]:
        row = await session.get(QueryLog, query_id)
        if row is None or row.citizen_id != citizen.id:
            return []
        if row.feedback is not None:
            return [self._to(citizen, Reply(_("已收到您的反馈，谢谢！")))]
        row.feedback = "helpful" if helpful else "not_helpful"
        if helpful:
            return [self._to(citizen, Reply(_("感谢您的反馈！还有其他问题可以继续问我。")))]
        return await self.escalate(session, citizen, row.question, source="not_helpful")

    async def clarify_none(self, session: AsyncSession, citizen: Citizen, query_id: int) -> list[Outgoing]:
        row = await session.get(QueryLog, query_id)
        if row is None or row.citizen_id != citizen.id:
            return []
        row.feedback = "none_matched"
        return await self.escalate(session, citizen, row.question, source="clarify")

    async def my_tickets(self, session: AsyncSession, citizen: Citizen) -> list[Outgoing]:
        items = await tickets.for_citizen(session, citizen.id)
        if not items:
            return [self._to(citizen, Reply(_("您还没有工单。")))]
        status = {"open": _("处理中"), "answered": _("已回复"), "closed": _("已办结")}
        lines = [_("您的工单：")]
        for t in items:
            q = t.question if len(t.question) <= 30 else t.question[:30] + "…"
            created = tickets.local_time(t.created_at, self.desk.hours)
            lines.append(f"#{t.id}  {status.get(t.status, t.status)}  {created}  {q}")
        return [self._to(citizen, Reply("\n".join(lines)))]

    async def rate(
        self, session: AsyncSession, citizen: Citizen, ticket_id: int, score: int
    ) -> list[Outgoing]:
        ticket = await session.get(Ticket, ticket_id)
        if ticket is None or ticket.citizen_id != citizen.id or not 1 <= score <= 5:
            return []
        if ticket.status != "closed":
            return [self._to(citizen, Reply(_("工单 #{id} 还在处理中，办结后再评价吧。", id=ticket_id)))]
        first = ticket.rating is None
        ticket.rating = score
        out = [self._to(citizen, Reply(_("感谢您的评价（{n} 星）！", n=score)))]
        if first:
            out += self.desk.card_out(ticket, citizen)
        return out

    async def flooded(self, session: AsyncSession, citizen: Citizen, text: str, warn: bool) -> list[Outgoing]:
        """A message over the flood limit: kept in the log (nothing is lost), one notice per minute."""
        session.add(
            QueryLog(
                citizen_id=citizen.id,
                channel=citizen.channel,
                question=text[:4000] or "[non-text]",
                outcome="flood",
            )
        )
        if not warn:
            return []
        return [
            self._to(
                citizen,
                Reply(
                    _(
                        "您发送得太快了，请稍等一分钟再发。已收到的消息都有记录，需要人工服务请稍后发送“人工”。"
                    )
                ),
            )
        ]

    # --- personal data --------------------------------------------------------------

    def privacy(self, chat_id: int, citizen_id: int | None = None) -> list[Outgoing]:
        """/privacy: needs no citizen row, so asking what we store stores nothing."""
        return [Outgoing(chat_id, privacy.privacy_notice(self.retention_days), citizen_id=citizen_id)]

    async def forget_prompt(self, session: AsyncSession, citizen: Citizen) -> list[Outgoing]:
        """/forget: say what will be erased and ask for a confirmation."""
        open_ids = [t.id for t in await tickets.for_citizen(session, citizen.id) if t.status != "closed"]
        return [self._to(citizen, privacy.forget_prompt(open_ids))]

    async def forget(self, session: AsyncSession, citizen: Citizen) -> list[Outgoing]:
        """Confirmed /forget: erase, fix the staff cards, withdraw copies in the staff group, confirm.

        Everything is returned for the caller's one transaction, so the confirmation is queued
        together with the erasure (its outbox row carries the chat id the citizen row loses).
        """
        chat_id, citizen_id, channel = citizen.chat_id, citizen.id, citizen.channel
        report = await privacy.forget_citizen(
            session, citizen_id, staff_chat_id=self.desk.staff_chat_id, closed_by=_("市民撤回")
        )
        out: list[Outgoing] = []
        for tid in report.tickets:
            ticket = await session.get(Ticket, tid)
            # A card never sent (or cancelled just now) cannot be edited: the note below says it.
            if ticket is not None and ticket.card_message_id is not None:
                out += self.desk.card_out(ticket, citizen)
        for tid in report.withdrawn:
            out += self.desk.staff_note(
                _("工单 #{id}：市民已撤回问题并删除了个人信息，工单已自动关闭，无法再回复。", id=tid)
            )
        out += [Outgoing(chat, delete_message_id=mid) for chat, mid in report.staff_messages]
        text = _(
            "您的个人信息已删除：显示名称、用户名、提问记录和工单对话内容都已清除。"
            "工单的时间、状态和评分只以匿名方式保留用于统计，无法再与您对应。"
        )
        if report.withdrawn:
            ids = "、".join(f"#{i}" for i in report.withdrawn)
            text += "\n" + _("未办结的工单 {ids} 已关闭。", ids=ids)
        if channel == "telegram":
            text += "\n" + _("您与本助手的聊天记录在您自己的 Telegram 里，可自行删除。")
        text += "\n" + _("以后再发消息，将作为新用户重新开始。")
        out.append(Outgoing(chat_id, Reply(text), citizen_id=citizen_id))
        return out

    def forget_cancelled(self, citizen: Citizen) -> list[Outgoing]:
        return [self._to(citizen, Reply(_("已取消，您的信息没有任何改动。")))]

    async def press(self, session: AsyncSession, citizen: Citizen, button: Button) -> list[Outgoing]:
        """A citizen pressed one of our buttons (Telegram or terminal)."""
        a, args = button.action, button.args
        if a == "topic":
            return await self.topic_questions(session, citizen, str(args[0]))
        if a == "answer":
            return await self.pick(session, citizen, str(args[0]), int(args[1]) if len(args) > 1 else 0)
        if a == "feedback":
            return await self.feedback(session, citizen, int(args[0]), bool(int(args[1])))
        if a == "clarify_none":
            return await self.clarify_none(session, citizen, int(args[0]))
        if a == "rate":
            return await self.rate(session, citizen, int(args[0]), int(args[1]))
        if a == "forget":
            return await self.forget(session, citizen) if int(args[0]) else self.forget_cancelled(citizen)
        return []
