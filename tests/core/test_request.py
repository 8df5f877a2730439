"""The request schema: validation, one-line errors, input images as data URLs."""

from __future__ import annotations

import pytest
from PIL import Image

from toolkit.errors import ImageInputError, InvalidRequestError
from toolkit.generation.images import open_image
from toolkit.generation.request import GenerationRequest, PostSpec, parse_request


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"steps": 0}, "--steps: Input should be greater than or equal to 1 (got 0)"),
        ({"n": 65}, "--n: Input should be less than or equal to 64"),
        ({"guidance_scale": -1}, "--guidance"),
        ({"class_label": -2}, "--class"),
        ({"seed": -1}, "--seed"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_out_of_range_values_name_the_flag(fields, expected):
    with pytest.raises(InvalidRequestError) as err:
        parse_request(fields)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_post_spec_parsing():
    spec = PostSpec.parse("upscale-lanczos:scale=4,mode=fast,sharpen=true,amount=0.5")
    assert spec.name == "upscale-lanczos"
    assert spec.options == {"scale": 4, "mode": "fast", "sharpen": True, "amount": 0.5}
    assert PostSpec.parse("sepia").options == {}
    with pytest.raises(InvalidRequestError, match="key=value"):
        PostSpec.parse("sepia:strength")


def test_images_become_png_data_urls(tmp_path):
    Image.new("RGBA", (20, 20), (255, 0, 0, 128)).save(tmp_path / "s.png")
    request = GenerationRequest(sketch=str(tmp_path / "s.png"), mask=Image.new("L", (8, 8), 255))
    assert request.sketch.startswith("data:image/png;base64,")
    assert open_image(request.mask).size == (8, 8)
    assert GenerationRequest.model_validate(request.model_dump()) == request  # round trip, e.g. from a recipe


def test_bad_image_inputs(tmp_path):
    with pytest.raises(ImageInputError, match="sketch file not found"):
        GenerationRequest(sketch=str(tmp_path / "missing.png"))
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ImageInputError, match="cannot read .*corrupt.png"):
        GenerationRequest(mask=str(tmp_path / "corrupt.png"))
    with pytest.raises(ImageInputError, match="is a data URL that is not valid base64"):
        open_image("data:image/png;base64,@@@")


def test_decompression_bomb_refused_before_decoding(tmp_path, monkeypatch):
    # A 1-bit 20000x20000 PNG is a few kB on disk and 400 megapixels once decoded.
    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png", optimize=True)
    assert (tmp_path / "bomb.png").stat().st_size < 200_000
    Image.new("1", (8000, 6000)).save(tmp_path / "big.png", optimize=True)  # under PIL's limit, over ours
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(1))
    with pytest.raises(ImageInputError, match="bomb.png is over the limit of 40 megapixels"):
        GenerationRequest(sketch=str(tmp_path / "bomb.png"))
    with pytest.raises(ImageInputError, match="8000x6000 = 48 megapixels, over the limit of 40"):
        GenerationRequest(sketch=str(tmp_path / "big.png"))
    assert decoded == []


def test_blank_strings_are_none():
    assert GenerationRequest(prompt="  ").prompt is None
    assert GenerationRequest(prompt="red").conditioning_kinds() == {"text"}
