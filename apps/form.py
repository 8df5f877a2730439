"""What the web form offers, derived from what is registered: one card per model (its
config, its generator's abilities, the defaults the pipeline would fill in), the request
fields each model can use, and the post-processor options a browser may set.

No Gradio here: the layout builds widgets from these, the handlers check requests with them.
"""

from __future__ import annotations

import enum
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from toolkit.components import Generator
from toolkit.errors import InvalidRequestError, ToolkitError, UnknownNameError
from toolkit.generation import pipeline
from toolkit.generation.request import GenerationRequest, PostSpec
from toolkit.generation.store import ModelInfo, conditioner_name, generator_class, list_models
from toolkit.host.registry import Registry, unknown_name_message

# Request fields every model takes; the rest depend on the model (see ``usable_fields``).
COMMON = frozenset({"model", "seed", "n", "post"})
# Sampling settings the pipeline resolves only for generators with the matching switch
# (``pipeline._resolve_sampling``): the switch is ``uses_sampler`` unless named here.
SWITCH = {"truncation": "uses_truncation"}
# ``plan`` asks for a text-accepting model when a negative prompt is given.
NEEDS = {"negative_prompt": "text"}


@dataclass(frozen=True)
class FieldSpec:
    """One request field as a form control: its type, bounds and help text, from the schema."""

    name: str
    type: type
    description: str
    minimum: float | None = None
    maximum: float | None = None
    default: Any = None
    kind: str | None = None  # the conditioning kind it carries (prompt -> "text")
    image: bool = False
    choices: tuple[Any, ...] | None = None  # a Literal's values

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()


def _base_type(annotation: Any) -> Any:
    """``int | None`` -> ``int``; ``Optional[Literal[...]]`` -> ``Literal[...]``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def field_spec(name: str, info: FieldInfo) -> FieldSpec:
    """A pydantic field (of the request or of a post-processor's options) as a ``FieldSpec``."""
    base = _base_type(info.annotation)
    choices = None
    if typing.get_origin(base) is typing.Literal:
        choices, base = typing.get_args(base), str
    elif isinstance(base, type) and issubclass(base, enum.Enum):
        choices, base = tuple(m.value for m in base), str
    bounds = {key: getattr(m, key) for m in info.metadata for key in ("ge", "gt", "le", "lt")
              if getattr(m, key, None) is not None}
    minimum = bounds.get("ge", bounds.get("gt"))
    maximum = bounds.get("le", bounds.get("lt"))
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    default = None if info.default_factory is not None else info.default
    return FieldSpec(name, base, info.description or "", minimum, maximum, default, extra.get("kind"),
                     bool(extra.get("image")), choices)


def request_fields() -> dict[str, FieldSpec]:
    """Every ``GenerationRequest`` field as a ``FieldSpec``, in schema order."""
    return {name: field_spec(name, info) for name, info in GenerationRequest.model_fields.items()}


def web_options(options: type[BaseModel]) -> dict[str, FieldSpec]:
    """The options of a post-processor a browser may set: numbers, switches and choices.

    Text and path options keep their defaults: their values can name files on the server
    (a policy, a signing key), and the web app never reads a path a user sent."""
    specs = {name: field_spec(name, info) for name, info in options.model_fields.items()}
    return {name: s for name, s in specs.items() if s.type in (bool, int, float) or s.choices is not None}


@dataclass(frozen=True)
class ModelCard:
    """A model as the form shows it; nothing is loaded to make one."""

    name: str
    generator: str
    accepts: frozenset[str]
    sizes: tuple[tuple[int, int], ...]  # (height, width); the first is the default
    size_bytes: int
    classes: tuple[str, ...]  # a name per class index (the index itself without names)
    usable: frozenset[str]  # request fields this model can use
    defaults: dict[str, Any] = field(default_factory=dict)  # what plan() fills in for empty fields
    error: str | None = None  # why this model cannot be used (shown instead of generating)

    @property
    def label(self) -> str:
        """``"name · generator · 29.8 MB · text, sketch"``."""
        takes = ", ".join(sorted(self.accepts)) or "unconditional"
        return f"{self.name} · {self.generator} · {self.size_bytes / 1e6:.1f} MB · {takes}"

    @property
    def summary(self) -> str:
        sizes = ", ".join(f"{w}x{h}" for h, w in self.sizes) or "none declared"
        if self.error:
            return f"**{self.name}** cannot be used here: {self.error}"
        return (f"**{self.name}**: generator `{self.generator}`, {self.size_bytes / 1e6:.1f} MB; accepts "
                f"{', '.join(sorted(self.accepts)) or 'nothing (unconditional)'}; makes {sizes} images")


def usable_fields(info: ModelInfo, cls: type[Generator], registry: Registry) -> frozenset[str]:
    """The request fields a model can use; the form hides the others when it is picked."""
    usable = set(COMMON)
    if len(info.sizes) > 1:
        usable |= {"width", "height"}
    for kind in info.accepts:
        entry = registry.conditioners.get(conditioner_name(info.config, kind))
        usable |= set(getattr(entry.obj, "request_fields", ())) if entry else set()
    for name, spec in request_fields().items():
        kind = spec.kind or NEEDS.get(name) or next((k for k in info.accepts if name.startswith(f"{k}_")), None)
        if kind in info.accepts:
            usable.add(name)
        elif hasattr(Generator, f"default_{name}") and getattr(cls, SWITCH.get(name, "uses_sampler")):
            usable.add(name)
    return frozenset(usable)


def _classes(config: dict[str, Any]) -> tuple[str, ...]:
    dataset = config.get("dataset")  # what the trainer recorded, class names included
    names = dataset.get("class_names") if isinstance(dataset, dict) else None
    count = int(config.get("num_classes") or 0)
    if names and len(names) == count:
        return tuple(map(str, names))
    return tuple(str(i) for i in range(count))


def model_card(info: ModelInfo, registry: Registry) -> ModelCard:
    """The card of one model: its config read, its defaults resolved by ``pipeline.plan``."""
    base = dict(name=info.name, generator=info.generator, accepts=frozenset(info.accepts), sizes=tuple(info.sizes),
                size_bytes=info.size_bytes, classes=_classes(info.config))
    try:
        cls = generator_class(info, registry)
        resolved = pipeline.plan(GenerationRequest(model=info.name, seed=0), registry).request
    except ToolkitError as error:
        return ModelCard(**base, usable=frozenset(COMMON), error=str(error))
    usable = usable_fields(info, cls, registry)
    schema = GenerationRequest.model_fields
    defaults = {k: v for k, v in resolved.model_dump().items()
                if k in usable and k not in COMMON and v is not None and v != schema[k].default}
    return ModelCard(**base, usable=usable, defaults=defaults)


def model_cards(registry: Registry) -> dict[str, ModelCard]:
    """Every installed model's card, by name; the default model first."""
    infos = list_models(registry)
    try:
        default = pipeline.find_model(None, registry).name
    except ToolkitError:
        default = None
    infos.sort(key=lambda m: m.name != default)
    return {info.name: model_card(info, registry) for info in infos}


# -- requests from the web -------------------------------------------------------------------


def check_model(name: str | None, cards: dict[str, ModelCard]) -> str:
    """A model the form offers, by name: never a folder path, which would be read from disk."""
    if not name:
        return next(iter(cards))
    if name not in cards:
        raise UnknownNameError(unknown_name_message("model", name, list(cards)))
    if cards[name].error:
        raise UnknownNameError(f"model '{name}' cannot be used: {cards[name].error}")
    return name


def check_post(post: list[Any], registry: Registry) -> list[PostSpec]:
    """Post-processors a browser or an API client asked for, options limited to ``web_options``,
    sorted into stage order (the pipeline refuses any other order)."""
    specs = [p if isinstance(p, PostSpec) else PostSpec.model_validate(p) for p in post]
    for spec in specs:
        cls = registry.get("postprocessors", spec.name)
        allowed = web_options(cls.Options)
        for key in spec.options:
            if key not in allowed:
                takes = ", ".join(allowed) or "none"
                raise InvalidRequestError(
                    f"post-processor '{spec.name}': option '{key}' cannot be set from the web app (text and paths "
                    f"stay at their defaults; options it takes here: {takes})")
    return sorted(specs, key=lambda s: registry.get("postprocessors", s.name).stage)


def merge_request(*parts: dict[str, Any]) -> dict[str, Any]:
    """Request fields from the form and from plugins' controls: later parts win, except
    ``post``, whose lists are joined (a name given twice keeps its later options)."""
    merged: dict[str, Any] = {}
    post: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key == "post":
                for spec in value or []:
                    spec = spec if isinstance(spec, PostSpec) else PostSpec.model_validate(spec)
                    post[spec.name] = spec
            else:
                merged[key] = value
    return merged | {"post": list(post.values())}


def for_model(fields: dict[str, Any], card: ModelCard) -> dict[str, Any]:
    """The fields of a request the model can use (``compare`` runs one request on two models):
    sampling settings and sizes of another model are dropped, conditioning is kept, so a
    model that cannot take the prompt says so."""
    keep = card.usable | {"prompt", "negative_prompt", "class_label", "sketch", "mask", "init_image"}
    return {k: v for k, v in fields.items() if k in keep} | {"model": card.name}
