"""Post-processor plugins, in chain order: safety, upscale, watermark, c2pa.
"""
