"""Parse-mode checking and plain-text rendering of HTML / MarkdownV2 as Telegram does them; text limits."""

from __future__ import annotations

import functools
import html
import re

from sandbox.botapi.errors import ApiError

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024

_HTML_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s[^<>]*)?)>")
_HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    }
)
_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")


def _utf16_len(text: str) -> int:
    # Every code point takes one or two UTF-16 units, so short strings need no encoding.
    n = len(text)
    if text.isascii():
        return n
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode())


def _plain_html(text: str, strict: bool) -> str:
    if "<" not in text and "&" not in text:
        return text
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    while True:
        start = text.find("<", pos)
        if start < 0:
            out.append(text[pos:])
            break
        out.append(text[pos:start])
        match = _HTML_TAG_RE.match(text, start)
        if match is None or match.group(2).lower() not in _HTML_TAGS:
            if strict:
                name = match.group(2) if match else ""
                raise ApiError(
                    400,
                    f'Bad Request: can\'t parse entities: Unsupported start tag "{name}" at byte offset '
                    f"{_byte_offset(text, start)}",
                )
            out.append("<")
            pos = start + 1
            continue
        closing, name = match.group(1), match.group(2).lower()
        if closing:
            if strict and (not stack or stack[-1] != name):
                expected = f'expected "</{stack[-1]}>", ' if stack else ""
                raise ApiError(
                    400,
                    f"Bad Request: can't parse entities: Unmatched end tag at byte offset "
                    f'{_byte_offset(text, start)}, {expected}found "</{name}>"',
                )
            if stack:
                stack.pop()
        else:
            stack.append(name)
        pos = match.end()
    if strict and stack:
        raise ApiError(
            400,
            f"Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1]}\"",
        )
    return html.unescape("".join(out))


def _plain_markdown_v2(text: str, strict: bool) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    open_links = 0
    toggles: dict[str, int] = {}
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 < n:
                out.append(text[i + 1])
            i += 2
            continue
        if c == "`":
            fence = "```" if text.startswith("```", i) else "`"
            end = text.find(fence, i + len(fence))
            if end < 0:
                if strict:
                    kind = "PreCode" if fence == "```" else "Code"
                    raise ApiError(
                        400,
                        f"Bad Request: can't parse entities: Can't find end of {kind} entity at byte offset "
                        f"{_byte_offset(text, i)}",
                    )
                end = n
            inner = text[i + len(fence) : end]
            if fence == "```" and "\n" in inner:
                inner = inner.split("\n", 1)[1]  # first line names the language
            out.append(inner.replace("\\`", "`").replace("\\\\", "\\"))
            i = end + len(fence)
            continue
        marker = text[i : i + 2] if text.startswith(("__", "||"), i) else c
        if marker in ("*", "_", "__", "~", "||"):
            toggles[marker] = toggles.get(marker, 0) ^ 1
            i += len(marker)
            continue
        if c == "[" or text.startswith("![", i):
            open_links += 1
            i += 2 if c == "!" else 1
            continue
        if c == "]" and open_links:
            open_links -= 1
            if text.startswith("(", i + 1):
                end = text.find(")", i + 2)
                while end > 0 and text[end - 1] == "\\":
                    end = text.find(")", end + 1)
                i = (end if end > 0 else n) + 1
            else:
                i += 1
            continue
        if c == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1
            continue
        if strict and c in _MDV2_RESERVED:
            raise ApiError(
                400,
                f"Bad Request: can't parse entities: Character '{c}' is reserved and must be escaped with "
                "the preceding '\\'",
            )
        out.append(c)
        i += 1
    if strict:
        names = {"*": "Bold", "_": "Italic", "__": "Underline", "~": "Strikethrough", "||": "Spoiler"}
        for marker, is_open in toggles.items():
            if is_open:
                raise ApiError(
                    400, f"Bad Request: can't parse entities: Can't find end of {names[marker]} entity"
                )
    return "".join(out)


@functools.lru_cache(maxsize=4096)  # a broadcast repeats one caption thousands of times
def visible_text(text: str, parse_mode: str | None, *, strict: bool) -> str:
    """What a Telegram client shows of `text` sent with `parse_mode` (markup removed, entities
    unescaped); with `strict`, malformed markup raises the 400 that Telegram answers."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        return _plain_html(text, strict)
    if mode == "markdownv2":
        return _plain_markdown_v2(text, strict)
    if mode == "markdown":
        return re.sub(r"[*_`\[]", "", text)
    return text
