"""How a policy's words meet a prompt: terms compiled to patterns on word boundaries, and
the pieces of a prompt (the whole, its clauses, windows of words) that the semantic match
compares with a category's examples. policy.py's module doc says what the terms mean.
"""

from __future__ import annotations

import re
import unicodedata

MIN_PIECE_WORDS = 3  # shorter clauses are not compared on their own (the whole prompt always is)
CLAUSE_BREAK = re.compile(r"[,.;:!?()\[\]\n]+|\s+(?:and|with|but|while|then)\s+", re.IGNORECASE)


def normalise(text: str) -> str:
    """Unicode-normalised (full-width letters, ligatures), case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def prompt_pieces(prompt: str, window: int) -> list[str]:
    """What the semantic match compares with the examples: the whole prompt, each clause
    (split at punctuation and at 'and'/'with'/'but'/'while'/'then') and every window of
    ``window`` consecutive words (stride half a window) of at least ``MIN_PIECE_WORDS``
    words, without duplicates."""
    text = " ".join(prompt.split())
    clauses = [c.strip() for c in CLAUSE_BREAK.split(text)]
    words = text.split()
    windows = []
    if len(words) > window:
        stride = max(1, window // 2)
        starts = list(range(0, len(words) - window + 1, stride))
        if starts[-1] != len(words) - window:
            starts.append(len(words) - window)  # the last words get a window too
        windows = [" ".join(words[s:s + window]) for s in starts]
    # A fragment of one or two words ("a skull") says too little to compare on its own.
    parts = [text] + [p for p in clauses + windows if len(p.split()) >= MIN_PIECE_WORDS]
    return list(dict.fromkeys(parts))


def compile_term(term: str) -> re.Pattern[str]:
    """A policy term -> a case-insensitive pattern on word boundaries (see the module doc)."""
    if term.startswith("re:"):
        body = term[3:]
    else:
        words = [w for w in re.split(r"[\s\-_]+", normalise(term)) if w.strip("*")]
        body = r"[\s\-_]*".join(re.escape(w.rstrip("*")) + (r"\w*" if w.endswith("*") else "") for w in words)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)
