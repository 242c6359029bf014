"""Text rules: duplicate-issue similarity, and secret masking for job logs.

Similarity (0..1) of a new bug report to an open issue is the best of: word overlap of the
titles (Jaccard over normalised words, stop words out), character similarity of the titles
(difflib ratio), and a weaker overlap of title+body words. A score at or above the configured
threshold (default 0.55) is a likely duplicate.

Masking replaces, in a job log: the server's own token, GitLab token formats (``glpat-…`` and
the other ``gl…-`` prefixes), AWS access keys, private key blocks, ``Authorization: Bearer …``,
URLs with a password, and ``password=`` / ``token: …`` style pairs (PAI's log redaction).
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from pai_core.log import REDACTED, redact

__all__ = ["keywords", "mask_secrets", "similarity", "words"]

_WORD = re.compile(r"[a-z0-9_]+")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "cannot",
        "could",
        "do",
        "does",
        "doesn't",
        "don't",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "it's",
        "not",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "when",
        "where",
        "which",
        "while",
        "with",
        "without",
        "after",
        "before",
        "bug",
        "error",
        "issue",
        "problem",
        "fails",
        "failed",
        "failing",
        "fail",
        "broken",
        "get",
        "gets",
        "got",
        "should",
        "would",
        "will",
    ]
)
_SECRET_PATTERNS = [
    re.compile(r"\bgl(?:pat|dt|rt|ptt|cbt|oas|soat|ffct|imt|agent|ft|wt|rtr)-[A-Za-z0-9_\-.]{16,}"),
    re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
    re.compile(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S
    ),
    re.compile(r"(?i)(?<=authorization: )(?:bearer|basic|token)\s+\S+"),
    re.compile(r"(?i)(?<=private-token: )\S+"),
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),
]


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def words(text: str) -> set[str]:
    """Normalised content words of ``text``."""
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


def keywords(text: str, n: int = 3) -> list[str]:
    """The ``n`` most telling words of a title, longest first (for a server-side search)."""
    raw = [w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2]
    uniq = list(dict.fromkeys(raw))
    return sorted(uniq, key=lambda w: (-len(w), uniq.index(w)))[:n]


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def similarity(title: str, body: str, other_title: str, other_body: str) -> float:
    """How likely the two reports describe the same bug, 0..1 (see the module docstring)."""
    t1, t2 = words(title), words(other_title)
    by_words = _jaccard(t1, t2)
    by_chars = SequenceMatcher(None, title.lower().strip(), other_title.lower().strip()).ratio()
    by_body = _jaccard(t1 | words(body[:2000]), t2 | words(other_body[:2000]))
    return round(max(by_words, by_chars * 0.9, by_body * 0.8), 3)


def mask_secrets(text: str, known: list[str]) -> tuple[str, int]:
    """``text`` with secrets replaced by ``***``, and how many were replaced."""
    count = 0
    for value in sorted((k for k in known if k and len(k) >= 6), key=len, reverse=True):
        count += text.count(value)
        text = text.replace(value, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text, n = pattern.subn(REDACTED, text)
        count += n
    redacted = redact(text)
    if redacted != text:
        count += max(1, redacted.count(REDACTED) - text.count(REDACTED))
    return redacted, count
