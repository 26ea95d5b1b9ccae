"""Names as text, not markup: class and file names escaped for where they are shown or written.

A class name comes from a folder or a manifest, a file name from the user's disk: either may hold
anything. Before it reaches a destination that gives some characters a meaning, it is escaped for
that destination here (one module, so every writer escapes the same way):

* :func:`visible` — control characters (C0, C1, DEL), line and paragraph separators and the bidi
  controls shown as escapes (``\\x1b``, ``\\n``, ``\\u202e``): a name cannot recolour a terminal,
  set its title, split a line or reorder what is printed around it;
* :func:`csv_cell` — a CSV (or tab-separated) cell: :func:`visible`, and a leading ``'`` before a
  cell a spreadsheet would take for a formula (``= + - @``, tab, CR); :func:`csv_uncell` reads it back;
* :func:`markdown` / :func:`markdown_code` / :func:`html` — Markdown and HTML text (model cards,
  notebooks): ``< > &`` as entities, ``| ` * [ ] \\`` backslash-escaped, ``javascript:`` links broken;
* :func:`label_problem` / :func:`check_class_names` — class names that cannot be stored one per line
  in ``labels.txt`` and read back the same (line breaks, control characters, surrounding spaces).

A base module: it imports no stage.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from soundlib.errors import DatasetError

__all__ = ["FORMULA_PREFIXES", "visible", "csv_cell", "csv_uncell", "markdown", "markdown_code", "html",
           "label_problem", "check_class_names"]

#: First characters that make a spreadsheet cell a formula (OWASP's CSV injection list).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

#: Bidi controls (embeddings, overrides, isolates, marks) and the Unicode line/paragraph separators.
_INVISIBLE = "\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_SHOWN = re.compile(f"[\x00-\x1f\x7f-\x9f{_INVISIBLE}]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: "re.Match[str]") -> str:
    ch = match.group(0)
    return _NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def visible(text: Any, *, keep: str = "") -> str:
    """``text`` with its control, separator and bidi characters written as escapes (``\\x1b``, ``\\n``,
    ``\\u202e``); ``keep``: characters left as they are (``"\\n"`` for a multi-line message)."""
    s = str(text)
    if keep:
        return "".join(ch if ch in keep else _SHOWN.sub(_escape, ch) for ch in s) if _SHOWN.search(s) else s
    return _SHOWN.sub(_escape, s)


def csv_cell(value: Any) -> Any:
    """A CSV cell as soundlib writes it: a string on one line (:func:`visible`), with a ``'`` before it when a
    spreadsheet would read it as a formula (or when it starts with ``'`` itself, so :func:`csv_uncell` gives
    back what was written); anything else (numbers, booleans, ``None``) unchanged."""
    if not isinstance(value, str):
        return value
    s = visible(value)
    return "'" + s if s[:1] in (*FORMULA_PREFIXES, "'") and s else s


def csv_uncell(value: Any) -> Any:
    """What :func:`csv_cell` was given, read back from a cell (a string it did not neutralise is unchanged)."""
    if isinstance(value, str) and len(value) > 1 and value[0] == "'" and value[1] in (*FORMULA_PREFIXES, "'"):
        return value[1:]
    return value


_MARKDOWN = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "`": "\\`", "*": "\\*", "[": "\\[", "]": "\\]",
             "\\": "\\\\"}
_SCHEME = re.compile(r"\b(javascript|vbscript|data)\s*:", re.IGNORECASE)


def markdown(text: Any) -> str:
    """``text`` as literal Markdown text, also inside a table cell: no HTML, link, code span, emphasis or cell
    break, on one line (:func:`visible`), and no ``javascript:`` that a renderer could make a link of."""
    s = "".join(_MARKDOWN.get(ch, ch) for ch in visible(text))
    return _SCHEME.sub(lambda m: f"{m.group(1)}&#58;", s)


def markdown_code(text: Any) -> str:
    """``text`` as a Markdown code span when that shows it exactly (nothing to escape), else as
    :func:`markdown` text."""
    s = str(text)
    escaped = markdown(s)
    return f"`{s}`" if escaped == s and s else escaped


def html(text: Any) -> str:
    """``text`` as literal HTML text (``& < > " '`` as entities), on one line (:func:`visible`)."""
    import html as _html

    return _html.escape(visible(text), quote=True)


#: Characters ``str.splitlines`` breaks a line at (``labels.txt`` is read with it).
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def label_problem(name: Any) -> str | None:
    """Why the class name ``name`` cannot be written to ``labels.txt`` (one name a line) and read back
    the same, or ``None`` when it can."""
    s = str(name)
    if not s.strip():
        return "is empty"
    if any(ch in _LINE_BREAKS for ch in s):
        return "holds a line break"
    if _CONTROL.search(s):
        return "holds a control character"
    if s != s.strip():
        return "starts or ends with a space"
    return None


def check_class_names(classes: Iterable[Any], *, where: str) -> None:
    """Refuse class names a model could not store and read back (:func:`label_problem`; two names equal
    once their surrounding spaces are stripped: one of them has such spaces, and is named).

    Raises
    ------
    DatasetError
        One line naming ``where`` (the dataset), every bad class (escaped) and what is wrong with it.
    """
    names = [str(c) for c in classes]
    stripped: dict[str, list[str]] = {}
    for n in names:
        stripped.setdefault(n.strip(), []).append(n)
    bad = []
    for n in names:
        why = label_problem(n)
        if why:
            same = [o for o in stripped.get(n.strip(), []) if o != n and n.strip()]
            bad.append((n, why + (f" (the same as {', '.join(repr(o) for o in same)} once stripped)" if same else "")))
    if bad:
        shown = "; ".join(visible(f"{n!r} {why}") for n, why in bad[:10])
        more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
        raise DatasetError(f"{where}: class name(s) that an exported model cannot store and read back: {shown}{more}; "
                           "a class name is one line of text without control characters or surrounding spaces: "
                           "rename the folder(s) or labels")
