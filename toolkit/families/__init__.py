"""Helpers that model families share, used by generator plugins (never by the core): noise
schedules and the denoiser wrapper (diffusion), the cross-attention processor (cross_attention),
and the latent-variable base of GANs and VAEs (latent).
"""
