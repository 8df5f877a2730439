"""The `emoji` plugin: every emoji a colour emoji font draws, captioned in English.

    names.py    CLDR names into English captions, and the attributes kept for evaluation
    font.py     finding the font, which emoji it draws, and drawing one at any size
    dataset.py  the ``emoji`` dataset, with a test split of unseen combinations

Needs a colour emoji font (Debian/Ubuntu: ``sudo apt-get install fonts-noto-color-emoji``;
macOS and Windows have one) and reads the CLDR names from the `emoji` package.
"""

from toolkit import hookimpl

from .dataset import EmojiDataset, heldout_hair, heldout_tones
from .font import find_font, load_font
from .names import TEMPLATES, EmojiInfo, all_emoji, english

__all__ = [
    "TEMPLATES",
    "EmojiDataset",
    "EmojiInfo",
    "all_emoji",
    "english",
    "find_font",
    "heldout_hair",
    "heldout_tones",
    "load_font",
]


@hookimpl
def register_datasets(register):
    register(EmojiDataset)
