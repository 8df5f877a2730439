"""The safety post-processor for real: prompt checks (terms, co-occurring terms, MiniLM
semantic match) before any work, image checks through the classifier hook (the shapes
evaluator on the shipped vae-shapes model, a stand-in CLIP), every action (block, blur,
flag), the recipe record, and one-line errors for bad policies.

The harmless policies here block "red circles" and "storms" so that every path runs for
real without harmful content; the default policy is checked on benign prompts only.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import toolkit_tiny
import torch
import yaml
from toolkit_plugins.postprocessors.safety import Safety, SafetyOptions
from toolkit_plugins.postprocessors.safety.actions import gaussian_blur, placeholder
from toolkit_plugins.postprocessors.safety.encoder import SentenceEncoder
from toolkit_plugins.postprocessors.safety.policy import load_policy
from toolkit_plugins.postprocessors.safety.terms import compile_term, prompt_pieces

from toolkit import generate
from toolkit.components import ImageTextScorer, PostContext, SafetyClassifier
from toolkit.errors import BlockedPromptError, ConfigError, PluginError
from toolkit.generation.images import pil_to_tensor
from toolkit.generation.pipeline import plan, save
from toolkit.generation.recipe import read_recipe
from toolkit.generation.request import GenerationRequest
from toolkit.host.loading import plugins_with_extra, set_registry
from toolkit.host.registry import Registry
from helpers import invoke  # noqa: E402  (tests/ is on sys.path)

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = yaml.safe_load((ROOT / "benchmarks" / "safety_prompts.yaml").read_text(encoding="utf-8"))

# vae-shapes, class 0 (circle), seed 1, n=4: image 2 is a red circle, the others are not.
RED_CIRCLE_REQUEST = {"model": "vae-shapes", "class_label": 0, "seed": 1, "n": 4}
RED_INDEX = 2


def red_circle_policy(folder: Path, action: str = "block", **extra) -> str:
    """A harmless policy: red circles (words, or seen by the shapes evaluator) and storms
    (a semantic match) get ``action``."""
    policy = {"categories": {
        "red-circles": {
            "description": "red circles (a harmless test category)", "action": action,
            "terms": ["red circle*"],
            "image": [{"classifier": "shapes", "concepts": ["a red circle", "a large red square"], "threshold": 1.0}],
        },
        "storms": {"action": extra.pop("storm_action", action), "examples": ["a thunderstorm with lightning", "a heavy storm at sea"],
                   "threshold": 0.6},
    }, **extra}
    path = folder / f"policy-{action}.yaml"
    path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    return str(path)


def safety(policy: str, **options) -> list[dict]:
    return [{"name": "safety", "options": {"policy": policy, **options}}]


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder.load()  # loaded once per process; this fixture only makes the cost explicit


@pytest.fixture
def text_model(home: Path, registry) -> str:
    """A tiny model that takes prompts (our shipped models do not yet)."""
    toolkit_tiny.make_model(home / "models" / "tinytext", "tiny-diffusion")
    return "tinytext"


# -- the sentence encoder ---------------------------------------------------------------------


def test_encoder_gives_sentence_transformers_embeddings(encoder):
    # Reference values from sentence-transformers 6.2 loading the same wheel (SentenceTransformer(path)).
    vectors = encoder.encode(["a red circle", "a crimson disc",
                              "A small blue square in the top left, and a large green star at the bottom."])
    assert vectors.shape == (3, 384)
    assert torch.allclose(vectors.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(vectors[0, :6], torch.tensor([-0.012648, 0.005743, -0.166881, 0.087797, -0.038739, -0.023345]), atol=1e-5)
    expected = torch.tensor([[1.0, 0.357619, 0.374987], [0.357619, 1.0, 0.217251], [0.374987, 0.217251, 1.0]])
    assert torch.allclose(vectors @ vectors.T, expected, atol=1e-5)


# -- prompt check -----------------------------------------------------------------------------


def test_terms_match_whole_words_any_case_and_hyphenation():
    def hit(term: str, text: str) -> bool:
        return compile_term(term).search(text.casefold()) is not None

    assert hit("self-harm", "Self Harm") and hit("self-harm", "SELFHARM") and hit("self harm", "self-harm")
    assert not hit("self-harm", "itself harmless")  # word boundaries, not substrings
    assert hit("decapitat*", "decapitated") and hit("slit* wrist*", "slitting wrists") and not hit("gore", "gorey")
    assert hit("re:(?<!al )gore", "gore") and not hit("re:(?<!al )gore", "al gore")
    assert hit("re:(?:[1-9]|1[0-7])[\\s-]*years?[\\s-]*old", "a 12-year-old") and not hit(
        "re:(?:[1-9]|1[0-7])[\\s-]*years?[\\s-]*old", "a 21 year old")


def test_prompt_check_blocks_terms_and_semantic_matches_before_planning_work(tmp_path, registry, encoder):
    policy = red_circle_policy(tmp_path)
    check = functools.partial(Safety().check_request, registry=registry)
    check(GenerationRequest(prompt="a blue square and a sunny day"), SafetyOptions(policy=policy))
    with pytest.raises(BlockedPromptError) as term:
        check(GenerationRequest(prompt="Two RED-CIRCLES on a table"), SafetyOptions(policy=policy))
    message = str(term.value)
    assert "\n" not in message and "category 'red-circles'" in message and "term 'red circle*'" in message
    assert "--post safety:policy=FILE" in message  # says how to change the policy
    with pytest.raises(BlockedPromptError, match="category 'storms'.*close to the example"):
        check(GenerationRequest(prompt="a tempest with thunder and lightning"), SafetyOptions(policy=policy))


def test_long_prompts_cannot_dilute_the_semantic_match(tmp_path, registry, encoder):
    policy = load_policy(red_circle_policy(tmp_path))
    filler = ("a quiet harbour at dawn with fishing boats, gulls over the water, nets drying on the pier, an old "
              "lighthouse, a bakery opening its shutters, children walking to school along the seafront")
    prompt = f"{filler}, lightning striking a tree in a raging storm, and a cat asleep on a warm step"
    whole = float(encoder.encode([prompt]) @ encoder.encode(["a thunderstorm with lightning"]).T)
    assert whole < 0.5  # the prompt as a whole is far from the example...
    matches, similarity = policy.check_prompt(prompt)
    assert [m.category for m in matches] == ["storms"] and similarity["storms"] >= 0.6  # ...a clause of it is not
    pieces = prompt_pieces(prompt, 6)
    assert prompt in pieces and "lightning striking a tree in a raging storm" in pieces
    assert all(len(p.split()) >= 3 for p in pieces)


def test_default_policy_lets_benign_prompts_through(registry, encoder):
    from toolkit_plugins.datasets.shapes import ShapesDataset, caption

    dataset = ShapesDataset("train", size=32)
    captions = sorted({caption(dataset.scene(i)) for i in range(300)})
    policy = load_policy()
    prompts = captions + PROMPTS["benign"]
    refused = [(p, [m.reason for m in matches]) for p, (matches, _) in zip(prompts, policy.check_prompts(prompts)) if matches]
    assert refused == []


def test_default_policy_refuses_clear_cases(registry, encoder):
    check = functools.partial(Safety().check_request, registry=registry)
    for prompt, category in [("a gory battlefield", "graphic-violence"),
                             ("a photo of a brutal murder victim", "graphic-violence"),
                             ("a naked child", "sexual-minors"),
                             ("hooded klansmen in white robes", "hate-symbols"),
                             ("fresh self-inflicted wounds on a wrist", "self-harm")]:
        with pytest.raises(BlockedPromptError, match=f"category '{category}'"):
            check(GenerationRequest(prompt=prompt), SafetyOptions())
    for benign in ("a portrait of Al Gore", "a poster for suicide prevention week"):  # the categories' 'allow' phrases
        check(GenerationRequest(prompt=benign), SafetyOptions())


def test_blocked_prompt_fails_before_any_model_loads(tmp_path, text_model, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded for a blocked prompt")

    monkeypatch.setattr("toolkit.generation.pipeline.load_model", no_loading)
    with pytest.raises(BlockedPromptError, match="category 'red-circles'"):
        generate(model=text_model, prompt="a red circle", post=safety(red_circle_policy(tmp_path)))


def test_blocked_prompt_on_the_command_line_is_one_line(text_model, tmp_path):
    result = invoke("generate", "--model", text_model, "--prompt", "a big red circle", "--out", str(tmp_path / "out"),
                    "--post", f"safety:policy={red_circle_policy(tmp_path)}")
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and "category 'red-circles'" in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_prompt_blur_and_flag_apply_to_every_image(tmp_path, text_model, encoder):
    policy = red_circle_policy(tmp_path, "flag", storm_action="blur")
    plain = generate(model=text_model, prompt="a heavy storm over the sea", n=2, seed=3)
    result = generate(model=text_model, prompt="a heavy storm over the sea", n=2, seed=3, post=safety(policy))
    record = result.post_records[0]["record"]
    assert record["prompt"]["matched"]["storms"]["action"] == "blur"
    assert record["blurred"] == [0, 1] and all(v["matched"]["storms"]["via"] == "prompt" for v in record["images"])
    for before, after in zip(plain.images, result.images):
        assert not np.array_equal(np.asarray(before), np.asarray(after))
    unflagged = generate(model=text_model, prompt="one red circle", n=2, seed=3)
    flagged = generate(model=text_model, prompt="one red circle", n=2, seed=3, post=safety(policy))
    record = flagged.post_records[0]["record"]
    assert record["flagged"] == [0, 1] and record["prompt"]["matched"]["red-circles"]["reason"] == "term 'red circle*'"
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(unflagged.images, flagged.images))


# -- image check and actions ------------------------------------------------------------------


def test_block_withholds_the_matching_image_with_a_placeholder(tmp_path, registry):
    plain = generate(**RED_CIRCLE_REQUEST)
    result = generate(**RED_CIRCLE_REQUEST, post=safety(red_circle_policy(tmp_path)))
    record = result.post_records[0]["record"]
    assert record["withheld"] == [RED_INDEX] and record["blurred"] == [] and record["flagged"] == []
    verdict = record["images"][RED_INDEX]
    assert verdict["action"] == "block"
    assert verdict["matched"]["red-circles"] == {"action": "block", "score": 1.0, "threshold": 1.0, "classifier": "shapes",
                                                 "concept": "a red circle"}
    assert f"image {RED_INDEX} withheld (red-circles 1.00)" in record["summary"]
    for i, (before, after) in enumerate(zip(plain.images, result.images)):
        if i == RED_INDEX:
            expected = placeholder(32, 32, "red-circles")
            assert torch.allclose(pil_to_tensor(after)[0], expected, atol=1 / 127)  # the placeholder, 8-bit rounded
        else:
            assert np.array_equal(np.asarray(before), np.asarray(after))
            assert record["images"][i]["action"] == "pass" and record["images"][i]["scores"]["red-circles"] < 1.0
    # The scores travel in every PNG's recipe.
    paths = save(result, tmp_path / "out")
    recipe = read_recipe(paths[RED_INDEX])
    saved = recipe["postprocessors"][0]
    assert saved["name"] == "safety" and saved["record"]["images"][RED_INDEX]["matched"]["red-circles"]["score"] == 1.0
    assert saved["record"]["policy_sha256"] == load_policy(saved["options"]["policy"]).sha256


def test_withheld_image_is_reported_on_the_command_line(registry, tmp_path):
    result = invoke("generate", "--model", "vae-shapes", "--class", "0", "--seed", "1", "--n", "4",
                    "--out", str(tmp_path / "out"), "--post", f"safety:policy={red_circle_policy(tmp_path)}")
    assert result.exit_code == 0, result.output
    report = " ".join(result.stderr.split())  # the console wraps long lines
    assert f"image {RED_INDEX} withheld (red-circles 1.00)" in report
    assert len(result.stdout.split()) == 4  # the four PNGs are still written, the withheld one as its placeholder


def test_blur_and_flag_actions(tmp_path, registry):
    plain = generate(**RED_CIRCLE_REQUEST)
    blurred = generate(**RED_CIRCLE_REQUEST, post=safety(red_circle_policy(tmp_path, "blur")))
    record = blurred.post_records[0]["record"]
    assert record["blurred"] == [RED_INDEX] and record["withheld"] == []
    before, after = (pil_to_tensor(im)[0] for im in (plain.images[RED_INDEX], blurred.images[RED_INDEX]))
    expected = gaussian_blur(before[None], 0.1 * 32)[0]
    assert torch.allclose(after, expected.clamp(-1, 1), atol=2 / 127)

    def redness(image):  # the reddest pixel: how far red stands above green and blue
        return float((image[0] - image[1:].mean(dim=0)).max())

    assert redness(after) < 0.6 * redness(before)  # strongly blurred: the red circle is a pale smudge
    flagged = generate(**RED_CIRCLE_REQUEST, post=safety(red_circle_policy(tmp_path, "flag")))
    assert flagged.post_records[0]["record"]["flagged"] == [RED_INDEX]
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(plain.images, flagged.images))


def test_placeholder_is_not_black_and_says_withheld():
    for size in (16, 32, 64, 256):
        image = (placeholder(size, size, "graphic-violence") + 1) / 2  # (3, H, W) in [0, 1]
        assert image.mean() > 0.4  # a grey card, nothing like a black (failed) image
        red = (image[0] > 0.6) & (image[1] < 0.35)
        assert red.float().mean() > 0.05  # the prohibition sign, at every size
    large = (placeholder(256, 256, "graphic-violence") + 1) / 2
    ink = large.mean(dim=0) < 0.3  # dark text on the grey card
    rows = ink.any(dim=1).nonzero()
    assert ink.sum() > 200 and rows.min() > 128  # "WITHHELD" and the category, under the sign
    assert not torch.equal(placeholder(256, 256, "a"), placeholder(256, 256, "b"))  # the category is written


def test_default_policy_on_a_shipped_model_passes_and_records_skips(registry):
    result = generate(model="vae-shapes", class_label=0, seed=0, n=4, post=[{"name": "safety"}])
    record = result.post_records[0]["record"]
    assert record["policy"] == "default" and record["withheld"] == [] and record["blurred"] == []
    assert record["skipped"]["clip"] == "model 'vae-shapes' has no CLIP model (clip_image_text_similarity)"
    assert "nudenet" in record["skipped"] or all("explicit-nudity" in v["scores"] for v in record["images"])


def test_default_policy_skips_a_clip_trained_only_on_shapes(registry):
    """ldm-shapes carries a CLIP, but one trained on shapes captions only: its similarity to
    the policy's concepts means nothing (it withheld benign shapes before this check), so
    the classifier is skipped with that reason, and ldm-shapes-minilm has no CLIP at all."""
    result = generate(model="ldm-shapes", prompt="a small red circle in the top left", seed=0, n=2, steps=4,
                      post=[{"name": "safety"}])
    record = result.post_records[0]["record"]
    assert record["withheld"] == [] and "trained only on the 'shapes' dataset" in record["skipped"]["clip"]
    other = generate(model="ldm-shapes-minilm", prompt="a small red circle", seed=0, n=1, steps=4, post=[{"name": "safety"}])
    assert other.post_records[0]["record"]["skipped"]["clip"].endswith("has no CLIP model (clip_image_text_similarity)")


class StandInClip(ImageTextScorer):
    """A generator-like object with CLIP's interface: similarity = how red the image is for
    texts mentioning red, 0 otherwise."""

    def clip_image_text_similarity(self, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
        redness = ((images[:, 0] - images[:, 1:].mean(dim=1)) / 2).clamp(min=0).amax(dim=(1, 2))  # (B,)
        return torch.stack([redness if "red" in t else torch.zeros_like(redness) for t in texts], dim=1)  # (B, T)


def test_clip_classifier_uses_the_models_clip_or_is_skipped(tmp_path, registry):
    policy = tmp_path / "clip.yaml"
    policy.write_text(yaml.safe_dump({"categories": {"red": {"action": "block", "image": [
        {"classifier": "clip", "concepts": ["a red picture", "a blue picture"], "threshold": 0.5}]}}}), encoding="utf-8")
    images = torch.full((2, 3, 8, 8), -1.0)
    images[0, 0] = 1.0  # pure red
    request = GenerationRequest(prompt=None)
    with_clip = PostContext(request, 0, "stand-in", "", generator=StandInClip(), registry=registry)
    out = Safety().process(images, SafetyOptions(policy=str(policy)), with_clip)
    assert out.record["withheld"] == [0] and out.record["images"][0]["matched"]["red"]["concept"] == "a red picture"
    assert out.record["images"][1]["scores"]["red"] == 0.0 and torch.equal(out.images[1], images[1])
    without = Safety().process(images, SafetyOptions(policy=str(policy)), PostContext(request, 0, "plain", "", generator=object(), registry=registry))
    assert without.record["skipped"] == {"clip": "model 'plain' has no CLIP model (clip_image_text_similarity)"}
    assert without.record["withheld"] == [] and torch.equal(without.images, images)


# -- the classifier hook ------------------------------------------------------------------------


class Labelled(SafetyClassifier):
    """A fixed-vocabulary classifier (tests only)."""

    name = "labelled"
    concepts = ("A", "B")

    def score(self, images, concepts, ctx):
        return torch.zeros(images.shape[0], len(concepts))


class NeedsALibrary(Labelled):
    """A classifier whose library is missing (tests only)."""

    name = "needs-a-library"

    @classmethod
    def unavailable(cls):
        return "libfoo is not installed"


def test_safety_classifiers_register_through_the_hook(home, tmp_path):
    import types

    from toolkit import hookimpl

    def register_safety_classifiers(register):
        register(Labelled)
        register(NeedsALibrary)

    plugin = types.SimpleNamespace(register_safety_classifiers=hookimpl(register_safety_classifiers))
    pm, registry = plugins_with_extra([("labelled", plugin)])
    set_registry(pm, registry)
    try:
        assert registry.safety_classifiers["labelled"].plugin == "labelled"
        assert {"clip", "shapes"} <= set(registry.safety_classifiers)
        policy = tmp_path / "labels.yaml"
        policy.write_text(yaml.safe_dump({"categories": {"c": {"action": "flag", "image": [
            {"classifier": "labelled", "concepts": ["A", "C"], "threshold": 0.5}]}}}), encoding="utf-8")
        with pytest.raises(ConfigError, match=r"unknown concepts \['C'\]; it scores: A, B"):
            Safety().check_request(GenerationRequest(), SafetyOptions(policy=str(policy)), registry)
        # A classifier that cannot run is an error for a required rule, a recorded skip for an optional one.
        rule = {"classifier": "needs-a-library", "concepts": ["A"], "threshold": 0.5}
        policy.write_text(yaml.safe_dump({"categories": {"c": {"action": "flag", "image": [rule]}}}), encoding="utf-8")
        with pytest.raises(ConfigError, match="classifier 'needs-a-library' cannot run here: libfoo is not installed"):
            Safety().check_request(GenerationRequest(), SafetyOptions(policy=str(policy)), registry)
        rule["optional"] = True
        policy.write_text(yaml.safe_dump({"categories": {"c": {"action": "flag", "image": [rule]}}}), encoding="utf-8")
        Safety().check_request(GenerationRequest(), SafetyOptions(policy=str(policy)), registry)
        ctx = PostContext(GenerationRequest(), 0, "m", "", registry=registry)
        out = Safety().process(torch.zeros(1, 3, 8, 8), SafetyOptions(policy=str(policy)), ctx)
        assert out.record["skipped"] == {"needs-a-library": "libfoo is not installed"}
    finally:
        set_registry(None, None)
    register, _ = Registry().stage("safety_classifiers", "bad")
    with pytest.raises(PluginError, match="expected a subclass of SafetyClassifier"):
        register(object)


# -- bad policies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("content, expected", [
    (None, "no such file"),
    ("categories: [unclosed", "invalid YAML at line 1"),
    ("- just a list", "expected a mapping with 'categories'"),
    ("categories: {}", "categories: Dictionary should have at least 1 item"),
    ("categories: {x: {action: delete, terms: [a]}}", "categories.x.action: Input should be 'block', 'blur' or 'flag'"),
    ("categories: {x: {action: flag, terms: [a], colour: red}}", "categories.x.colour: Extra inputs are not permitted"),
    ("categories: {x: {action: flag}}", "categories.x: matches nothing"),
    ("categories: {x: {action: flag, examples: [a storm]}}", "'examples' need a 'threshold'"),
    ("categories: {x: {action: flag, terms: ['*']}}", "has no letters or digits"),
    ("categories: {x: {action: flag, terms: ['re:a(']}}", "not a valid regular expression"),
    ("categories: {x: {action: flag, image: [{classifier: nope, concepts: [a], threshold: 1}]}}",
     "no safety classifier 'nope' is installed (installed: clip, shapes"),
    ("categories: {x: {action: flag, image: [{classifier: shapes, concepts: [a purple elephant], threshold: 1}]}}",
     "classifier 'shapes': cannot read 'a purple elephant'"),
])
def test_bad_policy_files_fail_in_planning_with_one_line(tmp_path, registry, content, expected):
    path = tmp_path / "policy.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        plan(GenerationRequest(model="vae-shapes", class_label=0, post=safety(str(path))))
    message = str(error.value)
    assert expected in message and str(path) in message and "\n" not in message, message


def test_unknown_option_is_refused(registry):
    with pytest.raises(Exception, match="polcy"):
        plan(GenerationRequest(model="vae-shapes", post=[{"name": "safety", "options": {"polcy": "x.yaml"}}]))
