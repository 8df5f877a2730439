"""The `emoji` dataset plugin: English captions from CLDR names, the held-out split, what the
font cannot draw, and the one line a missing font gets. Tests that draw skip without a colour
emoji font (Debian/Ubuntu: sudo apt-get install fonts-noto-color-emoji)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from toolkit_plugins.datasets.emoji import EmojiDataset, all_emoji, english, find_font, heldout_hair, heldout_tones
from toolkit_plugins.datasets.emoji.font import load_font, scan

from toolkit.cli import cli
from toolkit.errors import DatasetError, ToolkitWarning

needs_font = pytest.mark.skipif(find_font() is None, reason="no colour emoji font: apt-get install fonts-noto-color-emoji")
INFO = {info.emoji: info for info in all_emoji()}


@pytest.fixture(scope="module")
def data() -> dict[str, EmojiDataset]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ToolkitWarning)
        return {split: EmojiDataset(split, size=32) for split in EmojiDataset.splits}


# -- captions and attributes (no font needed) -------------------------------------------------


@pytest.mark.parametrize(("emoji", "caption"), [
    ("\U0001F469\U0001F3FE\u200d\U0001F9B0", "a woman with red hair, medium-dark skin tone"),
    ("\U0001F436", "a dog face"),
    ("\U0001F1EB\U0001F1F7", "the flag of France"),
    ("\U0001F1FA\U0001F1F8", "the flag of the United States"),
    ("\U0001F44D\U0001F3FD", "a thumbs up, medium skin tone"),
    ("\U0001F469\u200d\U0001F9B2", "a bald woman"),
    ("\U0001F9D4\U0001F3FB\u200d\u2640\ufe0f", "a woman with a beard, light skin tone"),
    ("\U0001F468\u200d\U0001F469\u200d\U0001F467", "a family of a man, a woman and a girl"),
    ("\U0001F44F", "clapping hands"),
    ("\u231B", "an hourglass done"),
    ("\U0001F984", "a unicorn"),
    ("1\ufe0f\u20e3", "a keycap showing 1"),
    ("\U0001F600", "a grinning face"),
    ("\U0001F46D\U0001F3FE", "women holding hands, medium-dark skin tone"),
])
def test_captions_are_natural_english(emoji, caption):
    assert INFO[emoji].phrase == caption


def test_attributes_are_kept_for_evaluation():
    info = INFO["\U0001F469\U0001F3FE\u200d\U0001F9B0"]
    assert info.attributes() == {
        "emoji": "\U0001F469\U0001F3FE\u200d\U0001F9B0", "name": "woman_medium-dark_skin_tone_red_hair",
        "base": "\U0001F469\u200d\U0001F9B0", "base_name": "woman_red_hair", "skin_tone": "medium-dark",
        "hair": "red", "person": "woman", "gender": "female", "category": "people"}
    mixed = INFO["\U0001F9D1\U0001F3FB\u200d\U0001F91D\u200d\U0001F9D1\U0001F3FF"]
    assert mixed.skin_tone == "light/dark" and mixed.tones == ("light", "dark")
    assert mixed.phrase == "people holding hands, light and dark skin tones"
    categories = {INFO[e].category for e in ("\U0001F436", "\U0001F34E", "\U0001F1EB\U0001F1F7", "\U0001F600",
                                             "\u2795", "\U0001F697", "\U0001F52D")}
    assert categories == {"animals", "food", "flags", "smileys", "symbols", "travel", "objects"}
    assert INFO["\u2640\ufe0f"].gender is None  # the female sign alone is a symbol
    assert english("Aries") == "the zodiac sign Aries" and english("SOS_button") == "an SOS button"


def test_heldout_combinations_are_fixed_by_the_seed():
    assert heldout_tones(0) == heldout_tones(0) and heldout_tones(0) != heldout_tones(1)
    hair = heldout_hair(0)
    assert len(hair) == 3 and len({p for p, _ in hair}) == 3 and len({h for _, h in hair}) == 3
    toneable = {info.base_name for info in all_emoji() if info.skin_tone}
    assert 0.08 * len(toneable) < len(heldout_tones(0)) < 0.25 * len(toneable)


# -- the dataset (needs the font) ---------------------------------------------------------------


@needs_font
def test_samples_are_centred_emoji_with_captions(data):
    sample = data["train"][0]
    image = sample["image"]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert image.min() >= -1 and image.max() <= 1
    assert torch.equal(image[:, 0, 0], torch.ones(3))  # a white background
    assert (image[:, 12:20, 12:20] < 0.9).any()  # and the emoji in the middle
    info, caption = data["train"].info(0)
    assert sample["caption"] == caption and info.phrase in caption
    assert sample["attributes"]["emoji"] == info.emoji and sample["attributes"]["heldout"] is False
    black = EmojiDataset(size=16, background="black", templates=False)
    assert torch.equal(black[0]["image"][:, 0, 0], -torch.ones(3))
    assert len(black) == len(data["train"]) // 4 and black[0]["caption"] == black.info(0)[0].phrase


@needs_font
def test_sketches_are_the_emoji_outlines_as_the_sketch_conditioner_traces_them():
    from toolkit_plugins.conditioners.sketch_lines import sketch_lines

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ToolkitWarning)
        sketched = EmojiDataset(size=64, sketch=True, templates=False)
    sample = sketched[0]
    sketch = sample["sketch"]
    assert sketch.shape == (1, 64, 64) and sketch.dtype == torch.float32
    assert 0 <= sketch.min() and sketch.max() <= 1
    assert 0.02 < (sketch > 0.5).float().mean() < 0.5  # lines, neither empty nor filled
    pixels = ((sample["image"].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
    traced = sketch_lines(Image.fromarray(pixels), 64, 64, from_photo=True)  # what a user's copy of it gives
    assert np.array_equal(traced, sketch[0].numpy())
    assert "sketch" not in EmojiDataset(size=16, templates=False)[0]  # off by default: tracing costs 0.1 s an emoji


@needs_font
def test_every_emoji_gets_every_caption_template_once(data):
    train = data["train"]
    n = len(train.items)
    captions = [train.info(k * n)[1] for k in range(4)]  # the first emoji, in each block of n samples
    phrase = train.items[0].phrase
    assert sorted(captions) == sorted([phrase, f"an emoji of {phrase}", f"{phrase} emoji", f"a picture of {phrase}"])


@needs_font
def test_heldout_combinations_are_only_in_test(data):
    train, test = data["train"], data["test"]
    tones, hair = train.heldout_tones, train.heldout_hair

    def combinations(info):
        return {(info.base_name, t) for t in info.tones} | {(info.person, info.hair)}

    assert not any(combinations(info) & (tones | hair) for info in train.items)
    assert all(combinations(info) & (tones | hair) for info in test.items)
    seen = set().union(*(combinations(info) for info in test.items))
    assert hair <= seen  # every held-out (person, hair) pair is drawn in test
    assert len(tones & seen) > 0.9 * len(tones)
    assert {i.emoji for i in train.items}.isdisjoint(i.emoji for i in test.items)
    assert len(train.items) + len(test.items) == train.drawable
    assert all(sample["attributes"]["heldout"] for sample in (test[0], test[len(test) - 1]))


@needs_font
def test_skipped_emoji_are_counted_and_reported_once():
    font = load_font()
    everything = tuple(INFO)
    scan.cache_clear()
    with pytest.warns(ToolkitWarning) as caught:
        drawable, skipped = scan(font, everything)
    message = str(caught[0].message)
    assert len(caught) == 1 and "\n" not in message
    assert f"draws {len(drawable):,} of the {len(everything):,}" in message
    assert len(drawable) + sum(skipped.values()) == len(everything)
    assert set(skipped) <= {"missing", "several glyphs", "unknown flag"}
    assert "\U0001F436" in drawable and "\U0001F469\U0001F3FE\u200d\U0001F9B0" in drawable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scan(font, everything)  # cached: no second warning


@needs_font
def test_the_preview_command_draws_a_grid(tmp_path, registry):
    out = tmp_path / "emoji.png"
    result = CliRunner().invoke(cli, ["dataset", "preview", "emoji", "--n", "4", "--out", str(out)], obj={})
    assert result.exit_code == 0, result.output
    assert Image.open(out).size[0] > 200


def test_a_missing_font_is_one_line_saying_how_to_install_one(tmp_path, registry):
    result = CliRunner().invoke(cli, ["dataset", "preview", "emoji", "-o", "font=/nonexistent.ttf",
                                      "--out", str(tmp_path / "x.png")], obj={})
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:")
    assert "apt-get install fonts-noto-color-emoji" in lines[0] and "font=PATH" in lines[0]
    assert "seguiemj.ttf" in lines[0] and "Apple Color Emoji" in lines[0]
    not_a_font = tmp_path / "font.ttf"
    not_a_font.write_text("not a font")
    with pytest.raises(DatasetError, match="cannot read .* as a font"):
        EmojiDataset(font=str(not_a_font))


def test_no_font_found_says_how_to_install_one(monkeypatch):
    from toolkit_plugins.datasets.emoji import font

    monkeypatch.setattr(font, "FONT_PATHS", ("/nonexistent/NotoColorEmoji.ttf",))
    font.load_font.cache_clear()
    with pytest.raises(DatasetError, match="needs a colour emoji font and found none: install"):
        EmojiDataset()
    font.load_font.cache_clear()


def test_bad_options_are_refused():
    from toolkit.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError, match="no options \\['colour'\\]"):
        EmojiDataset(colour="red")
    with pytest.raises(InvalidRequestError, match="size must be"):
        EmojiDataset(size=4)
    with pytest.raises(InvalidRequestError, match="background must be"):
        EmojiDataset(background="plaid")
    with pytest.raises(InvalidRequestError, match="templates must be true or false"):
        EmojiDataset(templates="sometimes")
    with pytest.raises(InvalidRequestError, match="sketch must be true or false"):
        EmojiDataset(sketch="yes")
    with pytest.raises(InvalidRequestError, match="label must be base or tone"):
        EmojiDataset(label="colour")


# -- what evaluation reads: class labels, captions, the classifiers' checks -------------------


@needs_font
def test_class_labels_number_the_base_emoji_or_the_skin_tone(data):
    train, test = data["train"], data["test"]
    assert train.class_names == test.class_names and len(train.class_names) > 1500  # both splits number alike
    sample = test[0]
    assert train.class_names[sample["class_label"]] == sample["attributes"]["base_name"]
    tones = EmojiDataset("test", size=32, label="tone")
    assert tones.class_names == ["none", "light", "medium-light", "medium", "medium-dark", "dark", "mixed"]
    labels = {tones.class_names[tones[i]["class_label"]] for i in range(len(tones.items))}
    assert {tones[i]["attributes"]["skin_tone"] for i in range(len(tones.items))} - {None} >= labels - {"none", "mixed"}


@needs_font
def test_heldout_false_trains_on_every_emoji_for_a_judge():
    every = EmojiDataset("train", size=16, heldout=False)
    train, test = EmojiDataset("train", size=16), EmojiDataset("test", size=16)
    assert len(every.items) == len(train.items) + len(test.items)
    assert {i.emoji for i in every.items} == {i.emoji for i in train.items + test.items}
    assert EmojiDataset("test", size=16, heldout=False).items == test.items
    heldout = next(i for i in range(len(every.items)) if every[i]["attributes"]["heldout"])
    assert every.items[heldout] in test.items


@needs_font
def test_reference_image_is_the_sample_a_caption_names(data):
    test = data["test"]
    for index in (0, len(test.items) + 1):  # the plain caption and another template
        sample = test[index]
        assert torch.equal(test.reference_image(sample["caption"]), sample["image"])
        assert test.caption_emoji(sample["caption"].upper()).emoji == sample["attributes"]["emoji"]
    from toolkit.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError, match="is no emoji's caption"):
        test.reference_image("a purple elephant riding a bicycle")


class FakeJudge:
    """Stands in for a trained classifier: logits that rank the classes as ``ranking`` says."""

    def __init__(self, class_names: list[str], ranking: list[str]):
        self.class_names = class_names
        self.logits = torch.zeros(len(class_names))
        for place, name in enumerate(ranking):
            self.logits[class_names.index(name)] = 10.0 - place

    def embed(self, images):
        return torch.zeros(len(images), 4), self.logits.expand(len(images), -1)


@needs_font
def test_score_prompt_reads_base_top1_top5_and_the_skin_tone(data, monkeypatch):
    from toolkit_plugins.datasets.emoji import dataset as module

    test = data["test"]
    names, tones = test.class_names, list(module.TONE_CLASSES)
    caption = "a thumbs up, dark skin tone"
    others = [n for n in names if n != "thumbs_up"][:5]

    def judged(base_ranking, tone_ranking):
        monkeypatch.setattr(module, "judges", lambda size: (FakeJudge(names, base_ranking), FakeJudge(tones, tone_ranking)))
        return test.score_prompt(torch.zeros(3, 32, 32), caption)

    assert judged(["thumbs_up"], ["dark"]) == {"base_top1": True, "base_top5": True, "skin_tone": True, "all_correct": True}
    assert judged(others[:2] + ["thumbs_up"], ["light"]) == {"base_top1": False, "base_top5": True, "skin_tone": False,
                                                           "all_correct": False}
    assert judged(others + ["thumbs_up"], ["dark"])["base_top5"] is False  # sixth place
    monkeypatch.setattr(module, "judges", lambda size: (FakeJudge(names, ["dog_face"]), FakeJudge(tones, ["dark"])))
    assert test.score_prompt(torch.zeros(3, 32, 32), "a dog face") == {"base_top1": True, "base_top5": True,
                                                                       "all_correct": True}  # no tone to check


@needs_font
def test_the_judges_are_the_two_classifiers_of_that_size(home):
    """score_prompt's classifiers are found as `toolkit eval` finds any: by dataset, size and
    options (the base one knows every emoji, heldout=false; the tone one has label=tone); a
    missing one says how to train it."""
    from toolkit_plugins.datasets.emoji import dataset as module

    from toolkit.errors import EvaluationError
    from toolkit.eval.classifier import train_classifier

    module.judges.cache_clear()
    with pytest.raises(EvaluationError, match="toolkit eval-classifier train --dataset emoji --size 16 -o heldout=false"):
        module.judges(16)
    base = train_classifier("emoji", 16, {"heldout": False}, steps=1, batch_size=8, width=4, feature_dim=8,
                            train_samples=64)
    tone = train_classifier("emoji", 16, {"label": "tone"}, steps=1, batch_size=8, width=4, feature_dim=8,
                            train_samples=64)
    assert tone.name == "emoji-16-label=tone" and base.name == "emoji-16-heldout=false"
    found = module.judges(16)
    assert [judge.path for judge in found] == [base, tone]
    assert len(found[1].class_names) == 7
    module.judges.cache_clear()


@needs_font
def test_prompt_eval_distribution_figures_against_the_real_emoji(home):
    """FID against the real training emoji and the spread of seeds, in the base classifier's
    features: a generator that draws each prompt's own emoji scores the baseline exactly and
    has no spread; noise spreads the seeds."""
    from toolkit.eval.classifier import DataRef, train_classifier
    from toolkit.eval.prompts import distribution_figures
    from toolkit.host.loading import get_registry

    train_classifier("emoji", 16, steps=1, batch_size=8, width=4, feature_dim=8, train_samples=64)
    test = EmojiDataset("test", size=16)
    captions = [test.info(i)[1] for i in range(3)]
    exact = [test.reference_image(c)[None].repeat(2, 1, 1, 1) for c in captions]  # 2 "seeds" per prompt
    figures = distribution_figures(test, captions, exact, DataRef("emoji", 16), get_registry())
    assert figures["fid_classifier"] == pytest.approx(figures["fid_classifier_real_baseline"], rel=1e-4)
    assert figures["seed_spread"] == 0 and figures["seed_pixel_difference"] == 0
    noisy = [(batch + 0.3 * torch.randn(batch.shape, generator=torch.Generator().manual_seed(i))).clamp(-1, 1)
             for i, batch in enumerate(exact)]
    spread = distribution_figures(test, captions, noisy, DataRef("emoji", 16), get_registry())
    assert spread["seed_spread"] > 0 and spread["seed_pixel_difference"] > 5
    assert distribution_figures(test, captions, exact, DataRef("emoji", 24), get_registry()) == {}  # no classifier
