"""Projecting the prompt to keys and values once per sampling run changes no pixel."""

from __future__ import annotations

import pytest
import torch

from toolkit.families.cross_attention import TextKeysOnce, reuse_text_keys, text_keys_kwargs


def tiny_unet():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=24,
                                attention_head_dim=4, norm_num_groups=8).eval()


@pytest.mark.parametrize("masked", [False, True])
def test_keys_projected_once_give_the_same_outputs(masked):
    from diffusers.models.attention_processor import Attention

    plain, cached = tiny_unet(), tiny_unet()
    assert reuse_text_keys(cached) and not any(isinstance(m.processor, TextKeysOnce) for m in plain.modules()
                                               if isinstance(m, Attention))
    tokens = torch.randn(2, 7, 24)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0]]) if masked else None
    cross = [m for m in cached.modules() if isinstance(m, Attention) and m.is_cross_attention]
    projections = []
    for layer in cross:
        layer.to_k.register_forward_hook(lambda *_: projections.append(1))
    once = text_keys_kwargs()
    with torch.no_grad():
        for step in range(3):  # a sampling run: new latents and timesteps, the same prompt tokens
            x, t = torch.randn(2, 4, 8, 8), torch.tensor([900.0 - 300 * step] * 2)
            expected = plain(x, t, encoder_hidden_states=tokens, encoder_attention_mask=mask).sample
            got = cached(x, t, encoder_hidden_states=tokens, encoder_attention_mask=mask, cross_attention_kwargs=once).sample
            assert torch.equal(got, expected)
    assert len(projections) == len(cross) > 0  # the first step projected the tokens; the other two reused them
    with torch.no_grad():  # without the run's dict, the layers compute as diffusers' own processor does
        x = torch.randn(2, 4, 8, 8)
        assert torch.equal(cached(x, t, encoder_hidden_states=tokens, encoder_attention_mask=mask).sample,
                           plain(x, t, encoder_hidden_states=tokens, encoder_attention_mask=mask).sample)


def test_a_custom_processor_is_left_alone():
    from diffusers.models.attention_processor import AttnProcessor

    unet = tiny_unet()
    unet.set_attn_processor(AttnProcessor())  # e.g. a user's own processor
    assert reuse_text_keys(unet) is False
    assert all(type(p) is AttnProcessor for p in unet.attn_processors.values())
