"""Conditioner plugins: class, sketch, mask and init image (inputs), and the text encoders
(text_clip, text_hf).
"""
