"""Safety policies: what to look for in prompts and images, and what to do about it.

A policy is a YAML file of categories. Each category has an ``action`` (``block``,
``blur`` or ``flag``) and any of three ways to match:

* ``terms``: words or phrases found in the prompt, case-insensitively and on word
  boundaries. Spaces and hyphens inside a term match each other ("self-harm" also finds
  "self harm" and "selfharm"); a ``*`` ending a word matches any ending ("decapitat*",
  "slit* wrist*"); a term starting with ``re:`` is a regular expression (still on word
  boundaries).
* ``all_of``: groups of terms that must all be present, one from each group (a word
  for a minor *and* a sexual word), for things no single word says.
* ``cues``: terms that match only together with the meaning: when the category has a
  ``cue_threshold``, a cue (or an ``all_of`` match) counts only if the prompt's semantic
  similarity to the examples reaches it. "naked" and "child" in "a naked mole rat in a
  children's book" are words, not the meaning; in "n4ked ch1ld" they are both.
* ``allow``: phrases (written like terms) that are removed from the prompt before its
  terms are matched, for benign uses of a term ("suicide prevention", "Al Gore").
* ``examples`` + ``threshold``: a semantic match. The prompt, each of its clauses and
  every window of ``window_words`` words are encoded with the MiniLM sentence encoder;
  the category matches when any of them has a cosine similarity of at least
  ``threshold`` with any example. Windows keep a long prompt from diluting a short
  harmful phrase.
* ``counter_examples``: benign prompts near the category ("a naked mole rat", "a bath
  bomb"). A piece of the prompt that is at least as close to one of them as to every
  example counts for nothing in the semantic match: near the line, the nearer side wins.

Every prompt is normalised first (normalise.py: leetspeak, letters split by spaces or
dots, lookalike letters of other scripts, accents, slang and five other languages glossed
into English), and terms and meaning are matched on that reading as well as on the prompt.
* ``image``: rules for the image check, each naming a registered safety classifier
  (``toolkit plugins`` lists them), the concepts it scores and a threshold.

See ``default.yaml`` beside this file for a complete policy, and docs/postprocessors.md.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from toolkit.errors import ConfigError

from .normalise import Normaliser
from .terms import compile_term, normalise, prompt_pieces

if TYPE_CHECKING:  # the semantic match imports it, with the sentence encoder
    import torch

DEFAULT_POLICY = Path(__file__).parent / "default.yaml"
ACTIONS = ("flag", "blur", "block")  # least to most severe: an image gets the most severe that matched
HELP = "see docs/postprocessors.md#safety"


class ImageRule(BaseModel):
    """One image check: ``classifier`` scores each image for each of ``concepts``; a score
    at or above ``threshold`` matches the category."""

    model_config = ConfigDict(extra="forbid")

    classifier: str = Field(min_length=1)
    concepts: list[str] = Field(min_length=1)
    threshold: float
    optional: bool = False  # skip (and say so in the recipe) when the classifier is not installed


class Category(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    action: Literal["block", "blur", "flag"]
    terms: list[str] = Field(default_factory=list)
    all_of: list[list[str]] = Field(default_factory=list)
    cues: list[str] = Field(default_factory=list)
    cue_threshold: float | None = Field(None, gt=0, le=1, description="similarity that cues and all_of need")
    allow: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list)
    counter_examples: list[str] = Field(default_factory=list)
    threshold: float | None = Field(None, gt=0, le=1, description="cosine similarity for the examples")
    image: list[ImageRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _complete(self) -> Category:
        if self.examples and self.threshold is None:
            raise ValueError("'examples' need a 'threshold' (cosine similarity, e.g. 0.6)")
        if (self.cue_threshold is not None or self.counter_examples) and not self.examples:
            raise ValueError("'cue_threshold' and 'counter_examples' need 'examples' to compare with")
        if self.cues and self.cue_threshold is None:
            raise ValueError("'cues' need a 'cue_threshold' (the similarity a cue needs, e.g. 0.45)")
        if not (self.terms or self.all_of or self.examples or self.image):
            raise ValueError("matches nothing: give it terms, all_of, examples or image rules")
        if any(len(group) == 0 for group in self.all_of):
            raise ValueError("'all_of' has an empty group")
        for term in [*self.terms, *(t for group in self.all_of for t in group), *self.cues, *self.allow]:
            if not re.search(r"\w", term.removeprefix("re:").replace("*", "")):
                raise ValueError(f"the term {term!r} has no letters or digits: it would match every prompt")
        return self


class PolicyFile(BaseModel):
    """The YAML file's schema."""

    model_config = ConfigDict(extra="forbid")

    categories: dict[str, Category] = Field(min_length=1)
    window_words: int = Field(6, ge=2, le=64, description="words per sliding window of the semantic match")


@dataclass
class PromptMatch:
    """A category the prompt matched, and why."""

    category: str
    action: str
    score: float  # 1.0 for a term match, the cosine similarity for a semantic one
    reason: str  # "term 'gore'", "close to example '...' (0.71 >= 0.60)"

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "score": round(self.score, 4), "reason": self.reason}


@dataclass
class Policy:
    """A loaded, checked policy. ``name`` is how messages and recipes refer to it."""

    name: str
    sha256: str
    spec: PolicyFile
    _terms: dict[str, list[tuple[str, re.Pattern[str]]]] = field(default_factory=dict)
    _groups: dict[str, list[list[tuple[str, re.Pattern[str]]]]] = field(default_factory=dict)
    _cues: dict[str, list[tuple[str, re.Pattern[str]]]] = field(default_factory=dict)
    _allow: dict[str, list[re.Pattern[str]]] = field(default_factory=dict)
    _examples: dict[str, torch.Tensor] = field(default_factory=dict)  # category -> (E, D) unit vectors
    _counters: dict[str, torch.Tensor] = field(default_factory=dict)  # category -> (C, D) unit vectors
    _normaliser: Normaliser | None = None

    @property
    def categories(self) -> dict[str, Category]:
        return self.spec.categories

    def check_prompt(self, prompt: str | None) -> tuple[list[PromptMatch], dict[str, float]]:
        """The categories ``prompt`` matches, most severe first, and every category's best
        semantic similarity (for the recipe: how close a prompt came)."""
        return self.check_prompts([prompt])[0]

    def check_prompts(self, prompts: list[str | None]) -> list[tuple[list[PromptMatch], dict[str, float]]]:
        """``check_prompt`` for many prompts at once (each distinct piece is encoded once)."""
        readings = {p: self.reading(p) for p in prompts if p}
        # A category's allowed phrases ("suicide prevention") are benign by its own say: its
        # meaning is compared without them, as its terms are.
        variants = {p: {name: self._without_allowed(name, text) for name in self.categories}
                    for p, text in readings.items()}
        semantic = self._semantic_scores(list(dict.fromkeys(t for v in variants.values() for t in v.values())))
        results = []
        for prompt in prompts:
            if not prompt:
                results.append(([], {}))
                continue
            reading = readings[prompt]
            read_as = f" (read as '{reading}')" if reading != normalise(prompt) else ""
            matches, cued = self._term_matches([normalise(prompt), reading])
            scores = {name: semantic[text][name] for name, text in variants[prompt].items() if name in semantic.get(text, {})}
            for name, (score, piece, example) in scores.items():
                category = self.categories[name]
                if name in matches:
                    continue
                if category.threshold is not None and score >= category.threshold:
                    why = f"'{piece}' is close to the example '{example}' ({score:.2f} >= {category.threshold:.2f})"
                    matches[name] = PromptMatch(name, category.action, score, why + read_as)
                elif name in cued and score >= category.cue_threshold:
                    why = (f"{cued[name]} and '{piece}' is close to the example '{example}' "
                           f"({score:.2f} >= {category.cue_threshold:.2f})")
                    matches[name] = PromptMatch(name, category.action, score, why + read_as)
            for name, match in matches.items():
                if match.score == 1.0 and read_as:
                    match.reason += read_as
            ordered = sorted(matches.values(), key=lambda m: -ACTIONS.index(m.action))
            results.append((ordered, {name: round(score, 4) for name, (score, _, _) in scores.items()}))
        return results

    def _without_allowed(self, category: str, text: str) -> str:
        for allowed in self._allow[category]:
            text = allowed.sub(" ", text)
        return " ".join(text.split())

    def reading(self, prompt: str) -> str:
        """What the matching sees: the prompt normalised (normalise.py), spellings undone and
        other languages glossed into English."""
        if self._normaliser is None:
            words = [t for c in self.categories.values()
                     for t in [*c.terms, *c.cues, *c.allow, *(t for g in c.all_of for t in g)]]
            self._normaliser = Normaliser(words)
        return self._normaliser(prompt)

    def _term_matches(self, texts: list[str]) -> tuple[dict[str, PromptMatch], dict[str, str]]:
        """Categories whose terms (or, without a ``cue_threshold``, one term of every
        ``all_of`` group) are in any of ``texts``; and the categories whose cues or
        ``all_of`` groups are there but still need the meaning (category -> why)."""
        matches: dict[str, PromptMatch] = {}
        cued: dict[str, str] = {}
        for name, category in self.categories.items():
            for text in texts:
                for allowed in self._allow[name]:
                    text = allowed.sub(" ", text)
                term = next((t for t, pattern in self._terms[name] if pattern.search(text)), None)
                if term is not None:
                    matches[name] = PromptMatch(name, category.action, 1.0, f"term '{term}'")
                    break
                found = [next((t for t, p in group if p.search(text)), None) for group in self._groups[name]]
                if found and all(found):
                    why = "terms " + " + ".join(f"'{t}'" for t in found)
                    if category.cue_threshold is None:
                        matches[name] = PromptMatch(name, category.action, 1.0, why)
                        break
                    cued.setdefault(name, why)
                cue = next((t for t, pattern in self._cues[name] if pattern.search(text)), None)
                if cue is not None:
                    cued.setdefault(name, f"cue '{cue}'")
        return matches, cued

    def _semantic_scores(self, prompts: list[str]) -> dict[str, dict[str, tuple[float, str, str]]]:
        """prompt -> category -> (best cosine similarity over the prompt's pieces and the
        category's examples, that piece, that example). A piece at least as close to a
        counter-example as to every example does not count (score 0 when none counts)."""
        with_examples = {n: c for n, c in self.categories.items() if c.examples}
        if not with_examples or not prompts:
            return {}
        import torch

        from .encoder import SentenceEncoder

        encoder = SentenceEncoder.load()
        for name, category in with_examples.items():
            if name not in self._examples:
                self._examples[name] = encoder.encode(category.examples)  # (E, D)
                self._counters[name] = encoder.encode(category.counter_examples)  # (C, D), C may be 0
        pieces = {prompt: prompt_pieces(prompt, self.spec.window_words) for prompt in prompts}
        index: dict[str, int] = {}
        for parts in pieces.values():
            for part in parts:
                index.setdefault(part, len(index))
        vectors = encoder.encode(list(index))  # (distinct pieces, D)
        similarity = {name: vectors @ self._examples[name].T for name in with_examples}  # (pieces, E) each
        benign = {name: (vectors @ self._counters[name].T).amax(dim=1) if len(self._counters[name]) else None
                  for name in with_examples}  # (pieces,) each: closest counter-example
        out: dict[str, dict[str, tuple[float, str, str]]] = {}
        for prompt, parts in pieces.items():
            rows = torch.tensor([index[p] for p in parts])
            out[prompt] = {}
            for name, category in with_examples.items():
                table = similarity[name][rows]  # (parts, E)
                best, which = table.max(dim=1)  # (parts,) each
                if benign[name] is not None:
                    best = torch.where(best > benign[name][rows], best, torch.zeros_like(best))
                piece = int(best.argmax())
                score = float(best[piece])
                out[prompt][name] = (score, parts[piece], category.examples[int(which[piece])] if score else "")
        return out


# -- loading -------------------------------------------------------------------------------

_cache: dict[tuple[str, int, int], Policy] = {}
_cache_lock = threading.Lock()


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and check a policy file (None or "default": the shipped one). Every problem is
    a ``ConfigError`` of one line naming the file; a file is read once while unchanged."""
    source = DEFAULT_POLICY if path in (None, "", "default") else Path(path).expanduser()
    label = "the default safety policy" if source == DEFAULT_POLICY else f"safety policy {source}"
    try:
        stat = source.stat()
        key = (str(source.resolve()), stat.st_mtime_ns, stat.st_size)
    except OSError:
        raise ConfigError(f"{label}: no such file; pass an existing YAML file as --post safety:policy=FILE "
                          f"({HELP})") from None
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    raw = source.read_bytes()
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{label}: invalid YAML{where}: {problem} ({HELP})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping with 'categories', got {type(data).__name__} ({HELP})")
    try:
        spec = PolicyFile.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(_describe(e) for e in error.errors())
        raise ConfigError(f"{label}: {problems} ({HELP})") from None
    policy = Policy("default" if source == DEFAULT_POLICY else str(source), hashlib.sha256(raw).hexdigest(), spec)
    for name, category in spec.categories.items():
        try:
            policy._terms[name] = [(t, compile_term(t)) for t in category.terms]
            policy._groups[name] = [[(t, compile_term(t)) for t in group] for group in category.all_of]
            policy._cues[name] = [(t, compile_term(t)) for t in category.cues]
            policy._allow[name] = [compile_term(t) for t in category.allow]
        except re.error as error:
            raise ConfigError(f"{label}: categories.{name}: a term is not a valid regular expression: {error} "
                              f"({HELP})") from None
    with _cache_lock:
        _cache[key] = policy
    return policy


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(p) for p in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    shown = f" (got {got!r})" if isinstance(got, (str, int, float)) and len(repr(got)) < 40 else ""
    return f"{location}: {message}{shown}" if location else message
