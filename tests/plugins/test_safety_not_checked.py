"""The safety image check tells "not checked" from "passed": an image no classifier scored
is recorded, printed and read back by `toolkit verify` as not checked, with the install
line for a missing classifier; `toolkit post --post safety` on a photo leaves its record
in the file; and NudeNet (opt-in, AGPL-3.0) runs on real photos and, given a high score,
blurs or withholds through the policy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image, PngImagePlugin
from toolkit_plugins.postprocessors.safety import NOT_CHECKED, Safety, SafetyOptions

from toolkit import generate
from toolkit.components import PostContext
from toolkit.generation.pipeline import save
from toolkit.generation.recipe import POST_KEY, read_post_log, read_recipe
from toolkit.generation.request import GenerationRequest
from toolkit.host.loading import plugins_with_extra, set_registry
from helpers import invoke  # noqa: E402  (tests/ is on sys.path)

NUDENET_PACKAGE = Path(__file__).resolve().parents[2] / "plugins" / "packages" / "toolkit-nudenet"
CLIP_CATEGORIES = ["sexual-minors", "graphic-violence", "self-harm", "hate-symbols"]  # the default policy's CLIP rules


@pytest.fixture
def bare(registry, monkeypatch):
    """The default install: toolkit-nudenet not registered, even where someone installed it."""
    monkeypatch.delitem(registry.safety_classifiers, "nudenet", raising=False)
    return registry


def photo(name: str) -> torch.Tensor:
    """A scikit-image sample photo (shipped in its wheel): ``(1, 3, H, W)`` in [-1, 1]."""
    from skimage import data

    return torch.from_numpy(getattr(data, name)()).permute(2, 0, 1)[None].float() / 127.5 - 1


def write_policy(folder: Path, categories: dict) -> str:
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump({"categories": categories}), encoding="utf-8")
    return str(path)


# -- not checked ---------------------------------------------------------------------------------


def test_no_classifier_ran_is_not_checked_never_passed(bare, tmp_path):
    result = generate(model="vae-shapes", class_label=0, seed=0, n=2, post=[{"name": "safety"}])
    record = result.post_records[0]["record"]
    assert record["checked_by"] == [] and record["not_checked"] == [0, 1]
    assert [v["action"] for v in record["images"]] == [NOT_CHECKED, NOT_CHECKED]
    assert record["unchecked_categories"] == [*CLIP_CATEGORIES, "explicit-nudity"]
    summary = record["summary"]
    assert summary.startswith("images not checked: no image classifier could run") and "pass" not in summary
    assert "nothing matched" not in summary
    assert "pip install -e plugins/packages/toolkit-nudenet" in record["skipped"]["nudenet"]
    assert "AGPL-3.0" in summary  # why it is not there by default
    # The same in the file's recipe, and as `toolkit verify` reads it back.
    [png, _] = save(result, tmp_path / "out")
    assert read_recipe(png)["postprocessors"][0]["record"]["images"][0]["action"] == NOT_CHECKED
    verified = invoke("verify", "--json", str(png))
    assert verified.exit_code == 0, verified.output
    found = json.loads(verified.stdout)[0]["found"]["safety"]
    assert found["action"] == NOT_CHECKED and found["checked_by"] == [] and found["summary"] == summary
    text = invoke("verify", str(png)).stdout
    assert '"action": "not checked"' in text and "images not checked" in text


def test_the_command_line_says_not_checked(bare, tmp_path):
    result = invoke("generate", "--model", "vae-shapes", "--class", "0", "--seed", "0", "--post", "safety",
                    "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    report = " ".join(result.stderr.split())  # the console wraps long lines
    assert "images not checked: no image classifier could run" in report and "nothing matched" not in report


def test_a_partial_check_names_what_it_did_not_check(bare, tmp_path):
    policy = write_policy(tmp_path, {
        "red-circles": {"action": "block",
                        "image": [{"classifier": "shapes", "concepts": ["a red circle"], "threshold": 1.0}]},
        "gore": {"action": "block", "image": [{"classifier": "clip", "concepts": ["gore"], "threshold": 0.3}]},
    })
    ctx = PostContext(GenerationRequest(), 0, "plain", "", generator=object(), registry=bare)
    record = Safety().process(torch.zeros(1, 3, 32, 32), SafetyOptions(policy=policy), ctx).record
    assert record["checked_by"] == ["shapes"] and record["not_checked"] == []
    assert record["images"][0]["action"] == "pass" and "red-circles" in record["images"][0]["scores"]
    assert record["unchecked_categories"] == ["gore"]
    assert record["summary"] == ("images passed the checks that ran (by shapes); not checked: gore "
                                 "(clip: model 'plain' has no CLIP model (clip_image_text_similarity))")


def test_a_prompt_action_still_says_the_image_was_not_checked(bare, tmp_path, home):
    import toolkit_tiny

    toolkit_tiny.make_model(home / "models" / "tinytext", "tiny-diffusion")
    policy = write_policy(tmp_path, {
        "storms": {"action": "flag", "terms": ["storm"],
                   "image": [{"classifier": "clip", "concepts": ["a storm"], "threshold": 0.3}]},
    })
    result = generate(model="tinytext", prompt="a storm at sea", n=1, seed=0,
                      post=[{"name": "safety", "options": {"policy": policy}}])
    record = result.post_records[0]["record"]
    assert record["flagged"] == [0] and record["not_checked"] == [0]
    assert record["summary"].startswith("images not checked") and "image 0 flagged (storms 1.00)" in record["summary"]


# -- `toolkit post` on a photo -------------------------------------------------------------------


def test_post_safety_on_a_photo_leaves_a_record_in_the_file(bare, tmp_path):
    from skimage import data

    source = tmp_path / "cat.jpg"
    Image.fromarray(data.chelsea()).save(source, quality=90)
    done = invoke("post", str(source), "--post", "safety", "--out", str(tmp_path / "out"))
    assert done.exit_code == 0, done.output
    out = Path(done.stdout.split()[-1])
    log = read_post_log(out)
    assert log["chain"] == ["safety [safety]"] and log["created"]
    [step] = log["postprocessors"]
    assert step["name"] == "safety" and step["record"]["images"][0]["action"] == NOT_CHECKED
    verified = invoke("verify", "--json", str(out))
    assert verified.exit_code == 0, verified.output
    found = json.loads(verified.stdout)[0]["found"]
    assert found["recipe"].startswith("none") and found["post"]["chain"] == ["safety [safety]"]
    assert found["safety"]["action"] == NOT_CHECKED and found["safety"]["summary"].startswith("images not checked")

    # A second run adds to the record; an altered record is refused, and verify calls it invalid.
    again = invoke("post", str(out), "--post", "safety", "--out", str(tmp_path / "again"))
    assert again.exit_code == 0, again.output
    assert read_post_log(Path(again.stdout.split()[-1]))["chain"] == ["safety [safety]", "safety [safety]"]
    altered = tmp_path / "altered.png"
    info = PngImagePlugin.PngInfo()
    info.add_itxt(POST_KEY, json.dumps({"format": "toolkit-post/1", "postprocessors": "passed"}))
    Image.open(out).save(altered, pnginfo=info)
    refused = invoke("post", str(altered), "--post", "safety", "--out", str(tmp_path / "refused"))
    assert refused.exit_code == 1 and "was altered" in refused.stderr and not (tmp_path / "refused").exists()
    checked = invoke("verify", "--json", str(altered))
    assert checked.exit_code == 2 and json.loads(checked.stdout)[0]["found"]["post"]["state"] == "invalid"


# -- NudeNet (opt-in) ------------------------------------------------------------------------------


@pytest.fixture
def nudenet_registry(home):
    pytest.importorskip("nudenet", reason="nudenet is not installed: pip install -e plugins/packages/toolkit-nudenet")
    if str(NUDENET_PACKAGE) not in sys.path:  # imported from the source tree, not installed
        sys.path.insert(0, str(NUDENET_PACKAGE))
    import toolkit_nudenet

    pm, registry = plugins_with_extra([("nudenet", toolkit_nudenet)])
    set_registry(pm, registry)
    yield registry
    set_registry(None, None)


def test_nudenet_runs_offline_on_real_photos_and_scores_them_low(nudenet_registry, monkeypatch):
    # No network: the detector's weights come from the nudenet wheel or nowhere.
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("NudeNet tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    ctx = PostContext(GenerationRequest(), 0, "photo", "", registry=nudenet_registry)
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        images = photo(name)
        record = Safety().process(images, SafetyOptions(), ctx).record
        verdict = record["images"][0]
        assert record["checked_by"] == ["nudenet"] and record["not_checked"] == [], name
        assert verdict["action"] == "pass" and verdict["scores"]["explicit-nudity"] < 0.2, (name, verdict)
        assert record["unchecked_categories"] == CLIP_CATEGORIES
        assert record["summary"].startswith("images passed the checks that ran (by nudenet); not checked: sexual-")


def test_a_high_nudenet_score_blurs_or_withholds(nudenet_registry, tmp_path, monkeypatch):
    import toolkit_nudenet

    def detect(self, images):  # image 1 shows an exposed breast at 0.9, image 0 nothing
        return [[], [{"class": "FEMALE_BREAST_EXPOSED", "score": 0.9, "box": [0, 0, 8, 8]}]][:images.shape[0]]

    monkeypatch.setattr(toolkit_nudenet.NudeNet, "detect", detect)
    images = torch.cat([photo("chelsea"), photo("chelsea")])
    ctx = PostContext(GenerationRequest(), 0, "photo", "", registry=nudenet_registry)
    out = Safety().process(images, SafetyOptions(), ctx)  # the shipped policy: explicit-nudity blurs
    record = out.record
    assert record["blurred"] == [1] and record["withheld"] == [] and record["images"][0]["action"] == "pass"
    assert record["images"][1]["matched"]["explicit-nudity"] == {
        "action": "blur", "score": 0.9, "threshold": 0.5, "classifier": "nudenet", "concept": "FEMALE_BREAST_EXPOSED"}
    assert torch.equal(out.images[0], images[0]) and not torch.equal(out.images[1], images[1])
    assert "image 1 blurred (explicit-nudity 0.90)" in record["summary"]

    policy = write_policy(tmp_path, {"nudity": {"action": "block", "image": [
        {"classifier": "nudenet", "concepts": list(toolkit_nudenet.EXPOSED_NUDITY), "threshold": 0.5}]}})
    blocked = Safety().process(images, SafetyOptions(policy=policy), ctx).record
    assert blocked["withheld"] == [1] and blocked["summary"] == "image 1 withheld (nudity 0.90)"
