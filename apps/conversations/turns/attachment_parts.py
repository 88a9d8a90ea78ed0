"""What the parts of a message become in a model request, attachments included.

- An image part with a `ref` reaches the model as data (base64 with its type, which the
  providers turn into a data: URL for Chat Completions or a base64 `source` for Anthropic),
  when the turn shows images (its input has one, so the router chose a vision model); otherwise
  it is a one-line note naming the image.
- A text file (text/*, application/json) is read into the context as a text part fenced in
  `<attachment ...>` with its name, type and size; the files of one turn share
  ATTACHMENT_TEXT_TOKEN_BUDGET tokens, the input's first and then the history's newest first,
  and a file cut short says how much of it was shown.
- Other files (PDF) and refs whose attachment was deleted become a note.

Every attachment part carries an `attachment` dict (name, type, size, what was shown) that
the providers ignore and the offline model reads, so it can say what it was given.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from apps.agents.providers.common import ATTACHMENT_TAG
from apps.agents.tokens import CHARS_PER_TOKEN, TokenCounter, load_encoding
from apps.conversations.attachments import TEXT_TYPES, attachment_read
from apps.conversations.models import Attachment, Message

# A token is rarely longer than this many characters: the slice that can hold `budget` tokens.
_MAX_CHARS_PER_TOKEN = 16


def _size_label(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def truncate_to_tokens(text: str, budget: int, counter: TokenCounter) -> tuple[str, bool]:
    """The longest prefix of `text` within `budget` tokens of `counter`'s tokenizer, and
    whether it was cut. Only a prefix that can hold the budget is ever encoded."""
    if budget <= 0:
        return "", bool(text)
    head = text[: budget * _MAX_CHARS_PER_TOKEN]
    if counter.encoding_name is None:
        limit = budget * CHARS_PER_TOKEN
        return text[:limit], len(text) > limit
    encoding = load_encoding(counter.encoding_name)
    tokens = encoding.encode_ordinary(head)
    if len(tokens) <= budget and len(head) == len(text):
        return text, False
    return encoding.decode(tokens[:budget]), True


@dataclass
class AttachmentParts:
    """Renders the messages of one turn; `budget` is what text files may still take."""

    session_id: Any
    tenant_id: Any
    agent: Any = None
    budget: int = field(default_factory=lambda: settings.ATTACHMENT_TEXT_TOKEN_BUDGET)
    used: list[dict[str, Any]] = field(default_factory=list)
    _rows: dict[str, Attachment] = field(default_factory=dict)
    _counter: TokenCounter | None = None

    def load(self, messages: list[Message]) -> None:
        refs = {p.get("ref") for m in messages for p in m.parts if p.get("type") in ("image", "file") and p.get("ref")}
        if refs:
            rows = Attachment.objects.filter(tenant_id=self.tenant_id, session_id=self.session_id, ref__in=refs)
            self._rows = {a.ref: a for a in rows}

    @property
    def counter(self) -> TokenCounter:
        if self._counter is None:
            model = getattr(self.agent, "guide_model", None)
            if model is not None:
                self._counter = TokenCounter(model.model_id, model.provider.kind)
            else:
                self._counter = TokenCounter()
        return self._counter

    def content(self, message: Message, *, show_images: bool) -> str | list[dict[str, Any]]:
        """Text for a message of text parts only (as before attachments); a list of parts otherwise."""
        if all(p.get("type") == "text" for p in message.parts):
            return message.text
        parts: list[dict[str, Any]] = []
        for part in message.parts:
            kind = part.get("type")
            if kind == "text" and part.get("text"):
                parts.append({"type": "text", "text": part["text"]})
            elif part.get("ref"):
                parts.append(self._attachment(part, show_images=show_images))
            elif kind == "image" and part.get("url"):
                if show_images:
                    parts.append({"type": "image", "url": part["url"], "mime_type": part.get("mime_type", "")})
                else:
                    parts.append({"type": "text", "text": "[an image was shown here]"})
            elif part.get("url"):
                parts.append({"type": "text", "text": f"[file link: {part['url']}]"})
        return parts

    def _note(self, text: str, info: dict[str, Any]) -> dict[str, Any]:
        return {"type": "text", "text": f"[{text}]", "attachment": info}

    def _attachment(self, part: dict[str, Any], *, show_images: bool) -> dict[str, Any]:
        ref = part["ref"]
        row = self._rows.get(ref)
        if row is None:
            info = {"ref": ref, "name": part.get("filename", ref), "shown": "missing"}
            self.used.append(info)
            return self._note(f"attachment {info['name']} was deleted", info)
        info = {"ref": ref, "name": row.filename, "mime_type": row.mime_type, "size": row.size}
        self.used.append(info)
        described = f"{row.filename} ({row.mime_type}, {_size_label(row.size)})"
        try:
            data = attachment_read(row)
        except OSError:
            info["shown"] = "missing"
            return self._note(f"attachment {described}: its file is missing", info)
        if row.is_image:
            if not show_images:
                info["shown"] = "note"
                return self._note(f"image {described}, shown in an earlier message", info)
            info["shown"] = "image"
            return {
                "type": "image",
                "data": base64.b64encode(data).decode("ascii"),
                "mime_type": row.mime_type,
                "width": row.width,
                "height": row.height,
                "attachment": info,
            }
        if row.mime_type in TEXT_TYPES or row.mime_type.startswith("text/"):
            return self._text_file(data.decode("utf-8", errors="replace"), row, info)
        info["shown"] = "note"
        return self._note(f"file {described}: its contents cannot be read into the conversation", info)

    def _text_file(self, text: str, row: Attachment, info: dict[str, Any]) -> dict[str, Any]:
        if self.budget <= 0:
            info.update(shown="note", chars=len(text), chars_shown=0)
            return self._note(
                f"file {row.filename} ({row.mime_type}, {len(text)} characters): not included, the turn's "
                "attachment budget (ATTACHMENT_TEXT_TOKEN_BUDGET) is spent",
                info,
            )
        shown, truncated = truncate_to_tokens(text, self.budget, self.counter)
        self.budget -= self.counter.count(shown)
        info.update(shown="text", chars=len(text), chars_shown=len(shown), truncated=truncated)
        body = (
            f'<{ATTACHMENT_TAG} name="{row.filename}" type="{row.mime_type}" size="{row.size}">\n'
            f"{shown}\n</{ATTACHMENT_TAG}>"
        )
        if truncated:
            body += (
                f"\n[{row.filename} was cut short: the first {len(shown)} of {len(text)} characters are shown "
                "(ATTACHMENT_TEXT_TOKEN_BUDGET).]"
            )
        return {"type": "text", "text": body, "attachment": info}
