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
from typing import Any

import numpy as np
from PIL import Image, ImageColor

from toolkit.components import Dataset
from toolkit.errors import InvalidRequestError

from .font import EmojiFont, draw, load_font, scan
from .names import HAIR_STYLES, PERSONS, TEMPLATES, TONES, EmojiInfo, all_emoji

HELDOUT_FRACTION = 0.15  # of the emoji that take a skin tone
MIN_SIZE = 8
TONE_NAMES = tuple(TONES.values())


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

    def __init__(self, split: str = "train", *, size: int = 64, seed: int = 0, font: str | None = None,
                 background: str = "white", templates: bool = True, sketch: bool = False, **options: Any):
        if options:
            raise InvalidRequestError(f"dataset 'emoji' has no options {sorted(options)}; it takes split, size, "
                                      "seed, font, background, templates and sketch")
        if split not in self.splits:
            raise InvalidRequestError(f"dataset 'emoji' has splits {', '.join(self.splits)}, not '{split}'")
        if not isinstance(size, int) or isinstance(size, bool) or size < MIN_SIZE:
            raise InvalidRequestError(f"dataset 'emoji': size must be a whole number of pixels, {MIN_SIZE} or more, "
                                      f"not {size!r}")
        for option, value in (("templates", templates), ("sketch", sketch)):
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
        chosen = [known[e] for e in drawable if self.is_heldout(known[e]) == (split == "test")]
        order = np.random.default_rng([self.seed, 0xE1]).permutation(len(chosen))
        self.items: list[EmojiInfo] = [chosen[i] for i in order]
        self.templates = TEMPLATES if templates else TEMPLATES[:1]
        self.sketch = sketch
        self._sketches: dict[str, np.ndarray] = {}  # emoji -> (size, size) lines, traced once (0.1 s each)

    def is_heldout(self, info: EmojiInfo) -> bool:
        """Whether ``info`` shows a held-out (emoji, skin tone) or (person, hair) combination."""
        return (any((info.base_name, tone) in self.heldout_tones for tone in info.tones)
                or (info.person, info.hair) in self.heldout_hair)

    def __len__(self) -> int:
        return len(self.items) * len(self.templates)

    def info(self, index: int) -> tuple[EmojiInfo, str]:
        """The emoji of sample ``index`` and its caption."""
        if not 0 <= index < len(self):
            raise IndexError(f"emoji {self.split} has {len(self)} samples; there is no sample {index}")
        n = len(self.items)
        item = self.items[index % n]
        return item, self.templates[(index // n + index % n) % len(self.templates)].format(item.phrase)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """A sample: "image" ``(3, size, size)`` float32 in [-1, 1]; "caption" str; "attributes"
        ``{"emoji", "name", "base", "base_name", "skin_tone", "hair", "person", "gender",
        "category", "heldout"}`` (names.py says what each holds); with the ``sketch`` option
        also "sketch" ``(1, size, size)`` float32 in [0, 1], 1 = line: the emoji's outlines as
        the ``sketch`` conditioner traces a rendering (``sketch_lines``), so a model trained on
        them reads a user's drawing the same way."""
        import torch

        item, caption = self.info(int(index))
        pixels = draw(self.font, item.emoji, self.size, self.background)  # (H, W, 3) uint8, cached
        image = torch.from_numpy(pixels.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0)
        sample = {"image": image, "caption": caption,
                  "attributes": {**item.attributes(), "heldout": self.split == "test"}}
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
