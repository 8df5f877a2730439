"""The `text-clip` conditioner: a CLIP text encoder (open_clip's model code and tokenizer).

Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision"
(https://arxiv.org/abs/2103.00020). Nothing is downloaded: we train a small CLIP here with
our trainer (``toolkit train configs/clip-shapes.yaml``), and any open_clip checkpoint a
user already has loads through open_clip's own loader.

A CLIP folder is open_clip's Hugging Face layout, so ``open_clip.create_model("local-dir:F")``
reads it too::

    clip-shapes/
      open_clip_config.json       {"model_cfg": {...}, "preprocess_cfg": {...}}
      open_clip_model.safetensors
      config.json                 ours: what it was trained on, its zero-shot accuracy

A model that uses it names the folder in its config.json: ``"text_encoder": {"path":
"text_encoder"}`` (relative to the model folder), or a file of a built-in open_clip
architecture: ``{"arch": "ViT-B-32", "checkpoint": "/path/to/weights.safetensors"}``.

Reads top to bottom: config, loading, encoding, training (loss, preview, zero-shot report),
and the hook.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from safetensors import SafetensorError

from toolkit import hookimpl
from toolkit.components import Dataset, Phase, TextConditioner, TextEmbedding, Trainable, TrainContext
from toolkit.errors import ModelError
from toolkit.families.phrases import PhraseSlots
from toolkit.generation.model_folder import pickle_conversion, refuse_pickle_weights, save_model_folder

if TYPE_CHECKING:  # torch and open_clip are imported where a CLIP is loaded or run, not when the plugins load
    import torch
    from torch import nn

OPEN_CLIP_CONFIG = "open_clip_config.json"
OPEN_CLIP_WEIGHTS = "open_clip_model.safetensors"


class ClipConfig(BaseModel):
    """Hyper-parameters of a CLIP trained here: the `model:` section of its training config."""

    model_config = ConfigDict(extra="forbid")

    embed_dim: int = Field(128, ge=8, description="size of the joint image-text space")
    vision_width: int = Field(128, ge=32, description="image tower width; its attention heads are 32 wide")
    vision_layers: int = Field(4, ge=1)
    patch_size: int = Field(8, ge=2)
    text_width: int = Field(128, ge=16, description="token embedding size: what cross-attention sees")
    text_layers: int = Field(4, ge=1)
    text_heads: int = Field(4, ge=1)
    context_length: int = Field(32, ge=8, description="tokens per prompt (shapes captions need at most 20)")


def open_clip_config(config: ClipConfig, image_size: int) -> dict[str, Any]:
    """Our hyper-parameters as open_clip's ``open_clip_config.json`` content."""
    return {
        "model_cfg": {
            "embed_dim": config.embed_dim,
            "vision_cfg": {"image_size": image_size, "layers": config.vision_layers, "width": config.vision_width,
                           "patch_size": config.patch_size, "head_width": 32},
            "text_cfg": {"context_length": config.context_length, "vocab_size": 49408, "width": config.text_width,
                         "heads": config.text_heads, "layers": config.text_layers},
        },
        # Our images are in [-1, 1]; open_clip's preprocessing would normalise [0, 1] with these.
        "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
    }


# -- loading --------------------------------------------------------------------------------


class ClipLoadError(ModelError):
    """A CLIP folder or checkpoint that open_clip cannot read."""


def load_open_clip(spec: dict[str, Any], base: Path | None = None) -> tuple[nn.Module, Any]:
    """(model, tokenizer) from a ``text_encoder`` spec: ``{"path": folder}`` in open_clip's
    local-dir layout, or ``{"arch": name, "checkpoint": file}`` for a built-in architecture."""
    import open_clip

    try:
        if "path" in spec:
            folder = Path(spec["path"])
            folder = folder if folder.is_absolute() or base is None else base / folder
            if not (folder / OPEN_CLIP_CONFIG).is_file():
                raise ClipLoadError(f"{folder} has no {OPEN_CLIP_CONFIG}: it is not an open_clip folder")
            refuse_pickle_weights(folder)  # open_clip would read a .bin or .pth there
            name = f"local-dir:{folder}"
            model = open_clip.create_model(name, require_pretrained=True)
            tokenizer = open_clip.get_tokenizer(name)
        else:
            checkpoint = Path(spec["checkpoint"])
            if not checkpoint.is_file():
                raise ClipLoadError(f"open_clip checkpoint not found: {checkpoint}")
            if checkpoint.suffix != ".safetensors":
                raise ClipLoadError(f"open_clip checkpoint {checkpoint} is not safetensors; toolkit loads only "
                                    "safetensors, since a pickle can run code. Convert it once, where you trust it: "
                                    f"{pickle_conversion(checkpoint)}")
            model = open_clip.create_model(spec["arch"], pretrained=str(checkpoint), require_pretrained=True)
            tokenizer = open_clip.get_tokenizer(spec["arch"])
    except ClipLoadError:
        raise
    except (RuntimeError, ValueError, KeyError, OSError, SafetensorError) as error:
        raise ClipLoadError(f"cannot load the CLIP text encoder {spec}: {error}") from None
    return model.eval(), tokenizer


def text_tokens(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The last layer's per-token states of open_clip's text tower, before pooling and
    projection: ids ``(B, L)`` -> ``(B, L, text_width)``. This is what Stable Diffusion's
    UNet cross-attends to; open_clip's ``encode_text`` only returns the pooled vector."""
    tower = getattr(model, "text", model)  # CustomTextCLIP keeps its tower in .text
    x = tower.token_embedding(ids) + tower.positional_embedding[: ids.shape[1]]
    x = tower.transformer(x, attn_mask=tower.attn_mask[: ids.shape[1], : ids.shape[1]])
    return tower.ln_final(x)


class TextClipConditioner(PhraseSlots, TextConditioner, Trainable):
    """A prompt through a CLIP text tower: per-token states for cross-attention and the
    pooled, projected embedding."""

    name = "text-clip"
    description = "CLIP text encoder (open_clip): token states for cross-attention and the pooled embedding"
    Config = ClipConfig

    def __init__(self, model: nn.Module, tokenizer: Any, config: ClipConfig | None = None, image_size: int | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.config, self.image_size = config, image_size  # set when training from scratch
        self.zero_shot: dict[str, float] = {}
        self.dataset: Dataset | None = None  # the training data, while training: previews come from its test split

    @classmethod
    def load(cls, model_folder: Path | None, config: dict[str, Any]) -> TextClipConditioner:
        spec = config.get("text_encoder") or {"path": "text_encoder"}
        conditioner = cls(*load_open_clip(spec, model_folder))
        conditioner.phrase_slots = int(config.get("text_phrases", 1))
        return conditioner

    @classmethod
    def from_folder(cls, folder: Path) -> TextClipConditioner:
        """A CLIP folder written by ``save_pretrained`` (or any open_clip local-dir folder)."""
        return cls(*load_open_clip({"path": str(folder)}))

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """texts -> (ids ``(B, L)`` int64, attention mask ``(B, L)``, 1 up to the end token)."""
        import torch

        ids = self.tokenizer(texts)
        end = getattr(self.tokenizer, "eot_token_id", None)
        if end is None:  # a tokenizer without CLIP's end token: padding is 0
            return ids, (ids != 0).long()
        # Not ``ids != 0``: id 0 is also a real token in CLIP's vocabulary ("!" inside "!$%").
        last = (ids == end).long().argmax(1, keepdim=True)
        return ids, (torch.arange(ids.shape[1]) <= last).long()

    def embed(self, texts: list[str]) -> TextEmbedding:
        """Prompts -> tokens ``(B, L, text_width)``, pooled ``(B, embed_dim)``, mask ``(B, L)``."""
        import torch

        device = next(self.model.parameters()).device
        ids, mask = self.tokenize(texts)
        ids = ids.to(device)
        with torch.no_grad():
            return TextEmbedding(text_tokens(self.model, ids), self.model.encode_text(ids), mask.to(device))

    @property
    def token_dim(self) -> int:
        return int(getattr(self.model, "text", self.model).ln_final.normalized_shape[0])

    def image_text_similarity(self, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """Cosine similarity of each image with each text: images ``(B, 3, H, W)`` in
        [-1, 1] at the CLIP's training size -> ``(B, T)`` in [-1, 1]."""
        import torch

        device = next(self.model.parameters()).device
        with torch.no_grad():
            image = self.model.encode_image(images.to(device).float(), normalize=True)
            text = self.model.encode_text(self.tokenize(texts)[0].to(device), normalize=True)
            return image @ text.T

    # -- training (toolkit train configs/clip-shapes.yaml) -----------------------------------

    @classmethod
    def from_config(cls, config: ClipConfig, *, dataset: Dataset | None = None) -> TextClipConditioner:
        import open_clip

        if dataset is None or "caption" not in dataset[0]:
            raise ModelError("a CLIP trains on captioned images; the dataset has no 'caption'")
        cfg = open_clip_config(config, dataset.size)["model_cfg"]
        model = open_clip.CLIP(cfg["embed_dim"], cfg["vision_cfg"], cfg["text_cfg"])
        clip = cls(model, open_clip.tokenizer.SimpleTokenizer(context_length=config.context_length), config, dataset.size)
        clip.dataset = dataset
        return clip

    def training_modules(self) -> dict[str, nn.Module]:
        return {"clip": self.model.train()}

    def training_phases(self) -> list[Phase]:
        return [Phase("clip", ("clip",), self.loss)]

    def loss(self, batch: dict, ctx: TrainContext) -> tuple[torch.Tensor, dict[str, float]]:
        """The symmetric contrastive loss over the batch (every other caption is a negative)."""
        import open_clip
        import torch

        clip = ctx.modules["clip"]
        ids = self.tokenizer(batch["caption"]).to(ctx.device)
        image, text, scale = clip(batch["image"], ids)[:3]
        loss = open_clip.ClipLoss()(image, text, scale)
        with torch.no_grad():
            hits = ((image @ text.T).argmax(1) == torch.arange(len(ids), device=ctx.device)).float().mean()
        return loss, {"loss": loss.item(), "batch_top1": hits.item()}

    def preview(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """For the captions of the first n test images, the image a pool of the first 256
        ranks first: ``(n, 3, H, W)`` in [-1, 1]. A good CLIP finds each caption's own image."""
        import torch

        from toolkit.train.data import evaluation_samples

        assert self.dataset is not None, "previews are made while training"
        samples = evaluation_samples(self.dataset, 256)
        images, captions = torch.stack([s["image"] for s in samples]), [s["caption"] for s in samples[:n]]
        self.model.eval()
        try:
            best = self.image_text_similarity(images, captions).argmax(0)
        finally:
            self.model.train()
        return images[best.cpu()]

    def _test_images(self, count: int, seed: int) -> dict[str, Any]:
        import torch
        from toolkit_plugins.datasets.shapes import ShapesDataset

        data = ShapesDataset("test", size=self.image_size, seed=seed, length=count, max_objects=1)
        samples = [data[i] for i in range(count)]
        return {"images": torch.stack([s["image"] for s in samples]), "captions": [s["caption"] for s in samples],
                "attributes": [s["attributes"][0] for s in samples]}

    def prepare_export(self, dataset: Dataset) -> None:
        """Zero-shot accuracy per attribute on 500 held-out single-object test images. Each
        attribute value is the normalised mean embedding of every one-object caption that
        has it (prompt ensembling, as Radford et al. average over templates): "circle" is
        the mean of "a small red circle in the top left", "a large blue circle at the
        bottom", ... The image must be closest to its own value's embedding."""
        import numpy as np
        import torch
        from toolkit_plugins.datasets.shapes.scene import COLOURS, POSITIONS, SHAPES, SIZES, ShapeObject, cell_of

        if dataset.name != "shapes":
            return
        objects = [ShapeObject(shape, colour, size, cell_of(position))
                   for shape in SHAPES for colour in COLOURS for size in SIZES for position in POSITIONS]
        device = next(self.model.parameters()).device
        self.model.eval()
        with torch.no_grad():
            text = self.model.encode_text(self.tokenize([o.describe() for o in objects])[0].to(device), normalize=True)
            test = self._test_images(500, 11)
            image = self.model.encode_image(test["images"].to(device), normalize=True)
        for attribute, values in (("shape", SHAPES), ("colour", list(COLOURS)), ("size", SIZES), ("position", POSITIONS)):
            names = [o.to_json()[attribute] for o in objects]
            classes = torch.stack([text[[i for i, n in enumerate(names) if n == v]].mean(0) for v in values])
            chosen = (image @ torch.nn.functional.normalize(classes, dim=-1).T).argmax(1).cpu().tolist()
            truth = [a[attribute] for a in test["attributes"]]
            self.zero_shot[attribute] = float(np.mean([values[c] == t for c, t in zip(chosen, truth)]))
        print("zero-shot accuracy on 500 test images: " + ", ".join(f"{k} {v:.1%}" for k, v in self.zero_shot.items()))

    def usage_hint(self, folder: Path) -> str:
        return f"a latent diffusion config cross-attends to it with text_encoder: {{path: {folder}}}"

    def save_pretrained(self, folder: Path) -> None:
        """open_clip's local-dir layout, fp16 weights, plus our config.json."""
        assert self.config is not None and self.image_size is not None, "only a CLIP trained here is saved"
        weights = {k: v.half() for k, v in self.model.state_dict().items()}
        ours = {"conditioner": self.name, "clip": self.config.model_dump(mode="json"), "zero_shot_accuracy": self.zero_shot}
        save_model_folder(folder, ours, {OPEN_CLIP_WEIGHTS: weights},
                          extra_files={OPEN_CLIP_CONFIG: json.dumps(open_clip_config(self.config, self.image_size), indent=2)})


@hookimpl
def register_conditioners(register):
    register(TextClipConditioner)
