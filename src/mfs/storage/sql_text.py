"""The text of a SQL file as its checksum sees it: comments and layout removed
(``normalised_sql``; what it keeps and why: ``mfs.storage.migrations``), and the ``-- mfs:``
directives that change how a file runs, which it keeps."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

DIRECTIVE = "-- mfs:"
_DOLLAR_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")
_IDENT_CHAR = re.compile(r"[\w$]")


def normalised_sql(text: str) -> str:
    """``text`` without comments, each run of whitespace one space; string literals, quoted
    identifiers and ``-- mfs:`` directives kept as written, dollar-quoted bodies normalised."""
    out: list[str] = []
    space = False  # whitespace or a comment since the last token
    i, n = 0, len(text)

    def emit(token: str) -> None:
        nonlocal space
        if space and out:
            out.append(" ")
        space = False
        out.append(token)

    while i < n:
        c = text[i]
        if c.isspace():
            space, i = True, i + 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            if text.startswith(DIRECTIVE, i):
                emit(text[i:end].rstrip())
            space, i = True, end
        elif text.startswith("/*", i):  # PostgreSQL nests block comments
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            space = True
        elif c in "'\"":
            # E'...' takes backslash escapes; everywhere a doubled quote is the quote itself.
            backslash = c == "'" and i > 0 and text[i - 1] in "eE" and (i < 2 or not _IDENT_CHAR.match(text[i - 2]))
            j = i + 1
            while j < n:
                if backslash and text[j] == "\\":
                    j += 2
                elif text[j] != c:
                    j += 1
                elif text.startswith(c * 2, j):
                    j += 2
                else:
                    j += 1
                    break
            emit(text[i:j])
            i = j
        elif c == "$" and not (i > 0 and _IDENT_CHAR.match(text[i - 1])) and (tag := _DOLLAR_TAG.match(text, i)):
            close = text.find(tag.group(), tag.end())
            body_end = n if close < 0 else close
            emit(tag.group() + normalised_sql(text[tag.end() : body_end]) + ("" if close < 0 else tag.group()))
            i = n if close < 0 else close + len(tag.group())
        else:
            emit(c)
            i += 1
    return "".join(out)


def sql_checksum(text: str) -> str:
    """SHA-256 of ``text``'s SQL without comments and layout: what a store records of a file."""
    return hashlib.sha256(normalised_sql(text).encode()).hexdigest()


class SqlFile:
    """A SQL file of ``sql/`` (a numbered migration, a repeatable object): its text and the
    checksum a store records of it. Mixed into dataclasses that have a ``path`` field."""

    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's SQL without comments and layout (``sql_checksum``)."""
        return sql_checksum(self.text)
