"""Generator plugins: DDPM, GAN, VAE, latent diffusion (ldm) and any local diffusers folder.
"""
