"""The whole plugin contract.

A plugin is a module (or package) named by an entry point in the ``toolkit`` group that
implements any of these hooks with ``@toolkit.hookimpl``. The built-in components in
``plugins/`` are found through the very same entry points, so reading them is the best
way to learn the API. docs/plugins.md documents each hook; a test keeps the two in step.

Registration hooks receive a ``register`` callback rather than returning values, so the
host can name, validate and de-duplicate what each plugin gives it. Implementations may
accept fewer arguments than the spec; new arguments are only ever added.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("toolkit")
hookimpl = pluggy.HookimplMarker("toolkit")


@hookspec
def register_generators(register: Callable[..., None]) -> None:
    """Called once, when plugins load. Register generator classes.

    ``register(GeneratorSubclass)``: a subclass of ``toolkit.components.Generator``.
    Its ``generate`` returns images of shape ``(n, 3, height, width)`` in ``[-1, 1]``.
    """


@hookspec
def register_conditioners(register: Callable[..., None]) -> None:
    """Called once, when plugins load. Register conditioner classes.

    ``register(ConditionerSubclass)``: a subclass of ``toolkit.components.Conditioner``
    whose ``kind`` is one of text, class, sketch, mask, init_image. Sketch encodings are
    ``(n, 1, H, W)`` in ``[0, 1]``, masks ``(n, 1, H, W)`` in ``[0, 1]`` (1 = redraw), class labels ``(n,)``.
    """


@hookspec
def register_samplers(register: Callable[..., None]) -> None:
    """Called once, when plugins load. Register diffusion samplers.

    ``register(name, sampler, description="")``: ``sampler`` follows k-diffusion's
    convention ``sampler(model, x, sigmas, extra_args=None, callback=None, disable=None,
    generator=None) -> x`` with ``x`` of shape ``(batch, C, H, W)`` and ``sigmas`` of
    shape ``(steps + 1,)`` (see ``toolkit.components.Sampler``).
    """


@hookspec
def register_postprocessors(register: Callable[..., None]) -> None:
    """Called once, when plugins load. Register post-processor classes.

    ``register(PostProcessorSubclass)``: a subclass of ``toolkit.components.PostProcessor``
    with a ``stage`` and an ``Options`` pydantic model. ``process`` receives and returns
    images of shape ``(batch, 3, H, W)`` in ``[-1, 1]``.
    """


@hookspec
def register_datasets(register: Callable[..., None]) -> None:
    """Called once, when plugins load. Register dataset classes.

    ``register(DatasetSubclass)``: a subclass of ``toolkit.components.Dataset`` whose
    samples are dicts with ``"image"`` of shape ``(3, H, W)`` in ``[-1, 1]`` and optional
    caption, class_label, sketch ``(1, H, W)``, mask ``(1, H, W)`` and attributes.
    """


@hookspec
def register_models(register: Callable[..., None]) -> None:
    """Called once, when plugins load. Make shipped model folders findable by name.

    ``register(path)``: a folder holding ``config.json`` and safetensors weights; the
    folder's name is the model's name. Models in the user folder ($TOOLKIT_HOME/models)
    are found without any plugin and take precedence.
    """


@hookspec
def register_eval_classifiers(register: Callable[..., None]) -> None:
    """Called once, when plugins load. Make shipped evaluation classifiers findable.

    ``register(path)``: a folder written by ``toolkit eval-classifier train`` (``config.json``
    naming the dataset, size, options and classes, plus ``model.safetensors``); ``toolkit
    eval`` picks the one whose dataset, size and options match the model's. Classifiers in
    the user folder ($TOOLKIT_HOME/eval_classifiers) are found without any plugin and take
    precedence. The classifier reads images of shape ``(batch, 3, size, size)`` in ``[-1, 1]``.
    """


@hookspec
def register_safety_classifiers(register: Callable[..., None]) -> None:
    """Called once, when plugins load. Register image classifiers for the safety policy.

    ``register(SafetyClassifierSubclass)``: a subclass of ``toolkit.components.SafetyClassifier``
    with a ``name`` that policies' image rules refer to. Its ``score(images, concepts, ctx)``
    receives images of shape ``(batch, 3, H, W)`` in ``[-1, 1]``, the policy's concept names
    and the ``PostContext`` (generator, request), and returns ``(batch, len(concepts))`` scores.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Called when the ``toolkit`` command starts. Add commands to the CLI.

    ``cli`` is the root ``click.Group``: decorate functions with ``@cli.command()``. A
    command reaches the registry through click's ``ctx.obj`` (``@click.pass_obj``), a
    ``toolkit.cli.root.CommandContext`` with ``.registry``.
    """


@hookspec
def register_web_controls(register: Callable[..., None]) -> None:
    """Called when the web app builds its form. Add controls for request options.

    ``register(label, build)``: ``build()`` creates Gradio components inside the app's
    "Plugin options" section and returns ``(components, to_request)`` where
    ``to_request(*values) -> dict`` maps the components' values to request fields
    (for example ``{"post": [{"name": "sepia", "options": {...}}]}``), merged into the
    ``GenerationRequest`` the form submits.
    """
