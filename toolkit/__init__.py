"""toolkit: a plugin-based multimodal image-generation toolkit.

The Python API::

    from toolkit import generate, GenerationRequest
    result = generate(model="ddpm-digits", class_label=7, n=4, seed=0)
    result.images[0].save("seven.png")
"""

from toolkit.host.hookspecs import hookimpl

__version__ = "0.1.0"
DISTRIBUTION = "toolkit-imagegen"  # the name pip installs it under; the import package is `toolkit`
__all__ = ["hookimpl", "generate", "GenerationRequest", "__version__", "DISTRIBUTION"]


def __getattr__(name: str):
    # Lazy, so that plugins importing `hookimpl` do not pull in the whole pipeline.
    if name == "generate":
        from toolkit.generation.pipeline import generate

        return generate
    if name == "GenerationRequest":
        from toolkit.generation.request import GenerationRequest

        return GenerationRequest
    raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
