"""The `emoji` dataset: every fully-qualified emoji a colour emoji font draws, captioned in
English from its CLDR name, with a test split of combinations training never shows.

The split is fixed by ``seed`` and by nothing else (not the font, not the run):

    (emoji, skin tone)  about ``HELDOUT_FRACTION`` of the emoji that take a skin tone each
                        hold out one of the five tones, picked by a hash of the seed and the
                        emoji's name, so adding emoji to the `emoji` package moves no others
    (person, hair)      ``len(PERSONS)`` pairs of man/woman/person and a hair style, no two
                        sharing a person or a style, every skin tone of each

``test`` holds every drawable emoji with a held-out combination, ``train`` every other one:
training still shows each held-out emoji in its other tones and each hair style on the
other persons, so ``test`` measures combining known parts, not learning new ones.

Sample ``i`` shows emoji ``i % n`` of the split (in a seeded order) with caption form
``(i // n + i % n) % forms``: with ``templates`` on, each emoji appears once with each of
``TEMPLATES`` (the plain English name, "an emoji of ...", "... emoji", "a picture of ...").
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageColor

from toolkit.components import Dataset
from toolkit.errors import InvalidRequestError

from .font import EmojiFont, draw, load_font, scan
from .names import HAIR_STYLES, PERSONS, TEMPLATES, TONES, EmojiInfo, all_emoji

if TYPE_CHECKING:
    import torch

    from toolkit.eval.classifier import TrainedClassifier

HELDOUT_FRACTION = 0.15  # of the emoji that take a skin tone
MIN_SIZE = 8
TONE_NAMES = tuple(TONES.values())
# What "class_label" numbers (the `label` option): the base emoji, or the skin tone.
LABELS = ("base", "tone")
TONE_CLASSES = ("none", *TONE_NAMES, "mixed")  # "mixed": two people of different tones


def tone_class(skin_tone: str | None) -> str:
    """The ``TONE_CLASSES`` entry of an emoji's ``skin_tone``."""
    return "none" if skin_tone is None else "mixed" if "/" in skin_tone else skin_tone


def heldout_tones(seed: int) -> frozenset[tuple[str, str]]:
    """The held-out (base name, skin tone) pairs: about ``HELDOUT_FRACTION`` of the emoji
    that take a skin tone, each with one tone, both chosen by a hash of ``seed`` and the name."""
    pairs = set()
    for name in sorted({info.base_name for info in all_emoji() if info.skin_tone}):
        digest = int.from_bytes(hashlib.sha256(f"emoji/{seed}/{name}".encode()).digest()[:8], "big")
        if digest % 1000 < HELDOUT_FRACTION * 1000:
            pairs.add((name, TONE_NAMES[digest // 1000 % len(TONE_NAMES)]))
    return frozenset(pairs)


def heldout_hair(seed: int) -> frozenset[tuple[str, str]]:
    """The held-out (person, hair style) pairs: one style for each of ``PERSONS``, all different."""
    styles = np.random.default_rng([seed, 0xE0]).permutation(len(HAIR_STYLES))[:len(PERSONS)]
    return frozenset(zip(PERSONS, (HAIR_STYLES[s] for s in styles)))


class EmojiDataset(Dataset):
    """Every emoji the font draws, centred on a plain background, with an English caption and
    attributes (base emoji, skin tone, hair, gender, category); ``test`` holds the emoji with
    a held-out (emoji, skin tone) or (person, hair) combination."""

    name = "emoji"
    description = ("every emoji a colour emoji font draws, captioned in English from the CLDR names, "
                   "with a test split of unseen (emoji, skin tone) and (person, hair) combinations")
    splits = ("train", "test")
    # `toolkit eval --prompts`: the prompt sets in prompts/ (docs/make_emoji_prompts.py writes
    # them), checked by the two emoji classifiers (see ``score_prompt``).
    prompt_sets = {f.stem: f for f in sorted((Path(__file__).parent / "prompts").glob("*.jsonl"))}
    default_prompt_set = "emoji-names"
    prompt_checks = ("base_top1", "base_top5", "skin_tone", "all_correct")

    def __init__(self, split: str = "train", *, size: int = 64, seed: int = 0, font: str | None = None,
                 background: str = "white", templates: bool = True, sketch: bool = False, label: str = "base",
                 heldout: bool = True, **options: Any):
        if options:
            raise InvalidRequestError(f"dataset 'emoji' has no options {sorted(options)}; it takes split, size, "
                                      "seed, font, background, templates, sketch, label and heldout")
        if label not in LABELS:
            raise InvalidRequestError(f"dataset 'emoji': label must be {' or '.join(LABELS)} (what class_label "
                                      f"numbers), not {label!r}")
        if split not in self.splits:
            raise InvalidRequestError(f"dataset 'emoji' has splits {', '.join(self.splits)}, not '{split}'")
        if not isinstance(size, int) or isinstance(size, bool) or size < MIN_SIZE:
            raise InvalidRequestError(f"dataset 'emoji': size must be a whole number of pixels, {MIN_SIZE} or more, "
                                      f"not {size!r}")
        for option, value in (("templates", templates), ("sketch", sketch), ("heldout", heldout)):
            if not isinstance(value, bool):
                raise InvalidRequestError(f"dataset 'emoji': {option} must be true or false, not {value!r}")
        try:
            self.background = ImageColor.getrgb(str(background))[:3]
        except ValueError:
            raise InvalidRequestError(f"dataset 'emoji': background must be a colour name or #rrggbb, "
                                      f"not '{background}'") from None
        super().__init__(split, size=size, seed=int(seed))
        self.font: EmojiFont = load_font(None if font is None else str(font))
        known = {info.emoji: info for info in all_emoji()}
        drawable, self.skipped = scan(self.font, tuple(known))
        self.drawable = len(drawable)
        self.heldout_tones = heldout_tones(self.seed)
        self.heldout_hair = heldout_hair(self.seed)
        # heldout=false: train holds every emoji, for a judge that must know every one (the
        # evaluation classifier); test still holds the held-out ones.
        chosen = [known[e] for e in drawable
                  if self.is_heldout(known[e]) == (split == "test") or (split == "train" and not heldout)]
        order = np.random.default_rng([self.seed, 0xE1]).permutation(len(chosen))
        self.items: list[EmojiInfo] = [chosen[i] for i in order]
        self.templates = TEMPLATES if templates else TEMPLATES[:1]
        self.sketch, self.label = sketch, label
        # Every drawable emoji's base, whichever the split: both splits number classes alike.
        self.base_names = sorted({known[e].base_name for e in drawable})
        self._class_index = {name: i for i, name in enumerate(self.class_names)}
        self._sketches: dict[str, np.ndarray] = {}  # emoji -> (size, size) lines, traced once (0.1 s each)

    def is_heldout(self, info: EmojiInfo) -> bool:
        """Whether ``info`` shows a held-out (emoji, skin tone) or (person, hair) combination."""
        return (any((info.base_name, tone) in self.heldout_tones for tone in info.tones)
                or (info.person, info.hair) in self.heldout_hair)

    def __len__(self) -> int:
        return len(self.items) * len(self.templates)

    @property
    def class_names(self) -> list[str]:
        """The base emoji's CLDR names (``label: base``, about 1,850) or ``TONE_CLASSES``."""
        return list(self.base_names) if self.label == "base" else list(TONE_CLASSES)

    def class_of(self, info: EmojiInfo) -> int:
        """The ``class_label`` of an emoji under this dataset's ``label``."""
        return self._class_index[info.base_name if self.label == "base" else tone_class(info.skin_tone)]

    def info(self, index: int) -> tuple[EmojiInfo, str]:
        """The emoji of sample ``index`` and its caption."""
        if not 0 <= index < len(self):
            raise IndexError(f"emoji {self.split} has {len(self)} samples; there is no sample {index}")
        n = len(self.items)
        item = self.items[index % n]
        return item, self.templates[(index // n + index % n) % len(self.templates)].format(item.phrase)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """A sample: "image" ``(3, size, size)`` float32 in [-1, 1]; "caption" str;
        "class_label" int (the base emoji or the skin tone, by ``label``); "attributes"
        ``{"emoji", "name", "base", "base_name", "skin_tone", "hair", "person", "gender",
        "category", "heldout"}`` (names.py says what each holds); with the ``sketch`` option
        also "sketch" ``(1, size, size)`` float32 in [0, 1], 1 = line: the emoji's outlines as
        the ``sketch`` conditioner traces a rendering (``sketch_lines``), so a model trained on
        them reads a user's drawing the same way."""
        import torch

        item, caption = self.info(int(index))
        pixels = draw(self.font, item.emoji, self.size, self.background)  # (H, W, 3) uint8, cached
        image = torch.from_numpy(pixels.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0)
        sample = {"image": image, "caption": caption, "class_label": self.class_of(item),
                  "attributes": {**item.attributes(), "heldout": self.is_heldout(item)}}
        if self.sketch:
            sample["sketch"] = torch.from_numpy(self.lines(item.emoji, pixels))[None]
        return sample

    def lines(self, emoji: str, pixels: np.ndarray) -> np.ndarray:
        """The emoji's line drawing ``(size, size)`` float32 in [0, 1], traced from its
        rendering ``pixels`` ``(size, size, 3)`` uint8 (all zeros when nothing traces)."""
        if emoji not in self._sketches:
            from toolkit_plugins.conditioners.sketch_lines import sketch_lines

            traced = sketch_lines(Image.fromarray(pixels), self.size, self.size, from_photo=True)
            self._sketches[emoji] = np.zeros((self.size, self.size), np.float32) if traced is None else traced
        return self._sketches[emoji]

    # -- checking images against captions (`toolkit eval --prompts`) ---------------------------

    def caption_emoji(self, caption: str) -> EmojiInfo:
        """The emoji a caption of this dataset (any template, either split) names."""
        found = _captions().get(caption.strip().lower())
        if found is None:
            raise InvalidRequestError(f"dataset 'emoji': {caption!r} is no emoji's caption; a prompt file's \"caption\" "
                                      "must be one (\"a dog face\", \"a woman with red hair, dark skin tone\")")
        return found

    def score_prompt(self, image: torch.Tensor, caption: str) -> dict[str, bool]:
        """Does image ``(3, H, W)`` in [-1, 1] show the emoji ``caption`` names? Read by the
        evaluation classifiers of this size (``toolkit eval-classifier train --dataset emoji``,
        once with ``-o label=tone``): ``base_top1`` / ``base_top5``, the base emoji among the
        classifier's first one or five guesses; ``skin_tone`` (emoji with one tone only),
        the tone classifier's guess; ``all_correct``, base top-1 and tone both right."""
        info = self.caption_emoji(caption)
        base, tone = judges(self.size)
        logits = base.embed(image[None])[1][0]  # (classes,)
        target = base.class_names.index(info.base_name)
        guesses = logits.topk(5).indices.tolist()
        checks = {"base_top1": guesses[0] == target, "base_top5": target in guesses}
        if info.skin_tone is not None and "/" not in info.skin_tone:
            checks["skin_tone"] = tone.class_names[int(tone.embed(image[None])[1][0].argmax())] == info.skin_tone
        checks["all_correct"] = all(checks.values())
        return checks

    def reference_image(self, caption: str) -> torch.Tensor:
        """The real emoji ``caption`` names, ``(3, size, size)`` in [-1, 1]: what a generator
        that drew it perfectly would give (``toolkit eval --prompts`` measures FID against it)."""
        import torch

        pixels = draw(self.font, self.caption_emoji(caption).emoji, self.size, self.background)
        return torch.from_numpy(pixels.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0)


@lru_cache(maxsize=1)
def _captions() -> dict[str, EmojiInfo]:
    """Every caption of every emoji (all templates), lower case -> the emoji."""
    return {template.format(info.phrase).lower(): info for info in all_emoji() for template in TEMPLATES}


@lru_cache(maxsize=4)
def judges(size: int) -> tuple[TrainedClassifier, TrainedClassifier]:
    """The base-emoji and skin-tone evaluation classifiers for ``size`` x ``size`` emoji. The
    base one is trained with ``heldout: false``: a judge must know the held-out emoji too (the
    (person, hair) pairs training never shows are base emoji of their own)."""
    from toolkit.eval.classifier import DataRef, find_classifier

    return (find_classifier(DataRef("emoji", size, {"heldout": False})),
            find_classifier(DataRef("emoji", size, {"label": "tone"})))
