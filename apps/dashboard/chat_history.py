"""The conversation as the chat page shows it: each user message followed by the turns that
answer it (a retry is a second turn of the same message), with their tool calls and the viewer's
own grade, plus where the page's live stream resumes so nothing is drawn twice or missed.

Reads only, through the conversations and events selectors the API uses.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from apps.conversations import forks, selectors
from apps.conversations.models import ChatSession, Message, Turn
from apps.events import selectors as event_selectors


@dataclass
class TurnView:
    turn: Turn
    tool_calls: list = field(default_factory=list)
    my_grade: int | None = None
    my_comment: str = ""

    @property
    def answer(self) -> str:
        return self.turn.output_message.text if self.turn.output_message_id else ""

    @property
    def is_final(self) -> bool:
        return self.turn.is_final


@dataclass
class Exchange:
    message: Message
    turns: list[TurnView] = field(default_factory=list)

    @property
    def attachments(self) -> list[dict]:
        return [p for p in self.message.parts if p.get("type") in ("image", "file")]


def _turn_views(*, tenant, session: ChatSession, user, turns: list[Turn]) -> dict:
    views = {t.pk: TurnView(turn=t) for t in turns}
    for call in selectors.tool_calls_of_session(tenant=tenant, session=session):
        if call.turn_id in views:
            views[call.turn_id].tool_calls.append(call)
    if getattr(user, "pk", None):
        for feedback in selectors.feedback_list(tenant=tenant, session=session).filter(user=user):
            if feedback.turn_id in views:
                views[feedback.turn_id].my_grade = feedback.grade
                views[feedback.turn_id].my_comment = feedback.comment
    return views


def conversation(*, tenant, session: ChatSession, user) -> tuple[list[Exchange], int]:
    """The exchanges in reading order, and the event id the page's socket resumes after.

    Finished turns are drawn from the database and the page ignores their events; a turn still
    in progress is drawn empty and rebuilt from its events, replayed from just before its first
    one, so its text appears exactly once. The tenant's newest event id is read *before* the
    turns: whatever happens after the read is replayed, and a turn that ends in between is drawn
    finished and its events skipped.
    """
    resume_after = event_selectors.newest_event_id(tenant=tenant)
    turns = list(selectors.turn_list(tenant=tenant, session=session).select_related("output_message"))
    views = _turn_views(tenant=tenant, session=session, user=user, turns=turns)
    active = [t.pk for t in turns if not t.is_final]
    firsts = event_selectors.turn_first_event_ids(tenant=tenant, turn_ids=active)
    if firsts:
        resume_after = min(resume_after, min(firsts.values()) - 1)

    answers = {t.output_message_id for t in turns if t.output_message_id}
    by_input: dict = defaultdict(list)
    for turn in turns:
        by_input[turn.input_message_id].append(views[turn.pk])
    exchanges = []
    for message in forks.conversation_order(tenant=tenant, session=session):
        if message.pk in answers or message.role == Message.Role.TOOL:
            continue  # an answer is drawn inside its turn; tool results inside their calls
        exchanges.append(Exchange(message=message, turns=by_input.get(message.pk, [])))
    return exchanges, max(resume_after, 0)


def turn_exchange(*, tenant, session: ChatSession, user, turn: Turn) -> Exchange:
    """One turn with the message it answers, for the page to add a turn another tab started."""
    turn = selectors.turn_list(tenant=tenant, session=session).select_related("output_message").get(pk=turn.pk)
    view = _turn_views(tenant=tenant, session=session, user=user, turns=[turn])[turn.pk]
    return Exchange(message=turn.input_message, turns=[view])
