"""The ``safety`` post-processor: checks the prompt before any work and every generated
image after, against a policy, and blocks, blurs or flags what matches.

    toolkit generate --model NAME --prompt "..." --post safety                       # the shipped policy
    toolkit generate --model NAME --prompt "..." --post safety:policy=mine.yaml

* The prompt check (``check_request``) runs while the request is planned, before any model
  loads: a prompt matching a ``block`` category is refused with one line naming the
  category. A prompt matching a ``blur`` or ``flag`` category applies that action to every
  image of the request.
* The image check (``process``) runs each safety classifier a policy's image rules name
  (``register_safety_classifiers``; ``clip`` and ``shapes`` are built in, ``nudenet`` is an
  opt-in package) and compares its scores with the rules' thresholds.
* Each image gets the most severe action of the categories it matched: ``block`` replaces
  it with a grey placeholder showing a prohibition sign and "WITHHELD" (never a silent
  black image), ``blur`` blurs it strongly, ``flag`` only records. The recipe records the
  policy, every score, what matched and what was done; a classifier that could not run
  (no CLIP in this model) is recorded as skipped.
* An image no classifier scored is "not checked", never passed: its action is
  ``not checked`` and the summary says which classifiers were skipped and how to install
  a missing one. ``toolkit verify`` reads the record back (``inspect``).

policy.py reads and checks policies (default.yaml is the shipped one) and matches prompts,
with normalise.py (the reading of leetspeak, lookalike letters and other languages, word
lists in lexicon.yaml), terms.py (terms as patterns, prompts cut into pieces) and encoder.py
(the MiniLM sentence encoder behind the semantic match); classifiers.py holds the built-in
image classifiers and actions.py the placeholder and the blur.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from toolkit import hookimpl
from toolkit.components import InspectContext, PostContext, PostProcessor, PostResult, SafetyClassifier, Stage
from toolkit.errors import BlockedPromptError, ConfigError, RecipeError
from toolkit.generation.recipe import file_post_records
from toolkit.host.registry import Registry

from .classifiers import ClipSimilarity, ShapesConcepts
from .policy import ACTIONS, HELP, ImageRule, Policy, load_policy

if TYPE_CHECKING:  # torch and the actions' image work are imported where images are checked
    import torch
    from PIL import Image

__all__ = ["NOT_CHECKED", "ClipSimilarity", "Safety", "SafetyOptions", "ShapesConcepts", "load_policy"]

# An image's action when no classifier scored it: not "pass", which would claim a check that never ran.
NOT_CHECKED = "not checked"

# How to get an opt-in classifier a policy names, for the line saying it was not installed.
INSTALL = {
    "nudenet": "pip install -e plugins/packages/toolkit-nudenet (opt-in: NudeNet is AGPL-3.0; "
               "docs/postprocessors.md#safety)",
}


class SafetyOptions(BaseModel):
    """Options from ``--post safety:policy=FILE,blur=0.1``."""

    model_config = ConfigDict(extra="forbid")

    policy: str = Field("default", description="safety policy YAML file; 'default': the shipped safety/default.yaml")
    blur: float = Field(0.1, gt=0, le=1, description="blur action's Gaussian sigma, a fraction of the longer side")


class Safety(PostProcessor):
    """Check prompts and images against a safety policy: block, blur or flag what matches."""

    name = "safety"
    stage = Stage.SAFETY
    Options = SafetyOptions

    def check_request(self, request: Any, options: SafetyOptions, registry: Registry) -> None:
        """Refuse a prompt that matches a ``block`` category, before any model loads; also
        refuses a policy that is missing, malformed or names an unknown classifier."""
        policy = load_policy(options.policy)
        _rules_by_classifier(policy, registry)  # every classifier and concept checked now, not after generating
        matches, _ = policy.check_prompt(getattr(request, "prompt", None))
        for match in matches:
            if match.action == "block":
                what = policy.categories[match.category].description
                raise BlockedPromptError(
                    f"prompt refused by the {_policy_label(policy)}: category '{match.category}'"
                    f"{f' ({what})' if what else ''}, {match.reason}. Rephrase the prompt, or pass another policy "
                    f"with --post safety:policy=FILE ({HELP})"
                )

    def process(self, images: torch.Tensor, options: SafetyOptions, ctx: PostContext) -> PostResult:
        """images: ``(B, 3, H, W)`` in [-1, 1] -> the same, with withheld images replaced
        and blurred ones blurred; the record says what matched and what was done."""
        import torch

        from .actions import gaussian_blur, placeholder

        policy = load_policy(options.policy)
        batch = images.shape[0]
        matched: list[dict[str, dict[str, Any]]] = [{} for _ in range(batch)]  # per image: category -> why
        scores: list[dict[str, float]] = [{} for _ in range(batch)]  # per image: category -> best image score
        skipped: dict[str, str] = {}
        ran: list[str] = []  # the classifiers that scored these images
        with torch.inference_mode():
            for name, (cls, rules) in _rules_by_classifier(policy, ctx.registry).items():
                if cls is None:
                    hint = f"; to check it: {INSTALL[name]}" if name in INSTALL else ""
                    skipped[name] = f"not installed (the policy marks its rules optional){hint}"
                    continue
                classifier = _instance(cls)
                reason = cls.unavailable() or classifier.skip_reason(ctx)
                if reason:
                    skipped[name] = reason
                    continue
                concepts = list(dict.fromkeys(c for _, rule in rules for c in rule.concepts))
                table = classifier.score(images, concepts, ctx).float().cpu()  # (B, C)
                ran.append(name)
                for category, rule in rules:
                    columns = table[:, [concepts.index(c) for c in rule.concepts]]  # (B, concepts of this rule)
                    best, where = columns.max(dim=1)
                    for i in range(batch):
                        score = float(best[i])
                        scores[i][category] = round(max(score, scores[i].get(category, float("-inf"))), 4)
                        if score >= rule.threshold and score > matched[i].get(category, {}).get("score", float("-inf")):
                            matched[i][category] = {
                                "action": policy.categories[category].action, "score": round(score, 4),
                                "threshold": rule.threshold, "classifier": name,
                                "concept": rule.concepts[int(where[i])],
                            }

        prompt = getattr(ctx.request, "prompt", None)
        prompt_matches, similarity = policy.check_prompt(prompt)
        for match in prompt_matches:  # blur and flag categories (block ones never got this far)
            for found in matched:
                found.setdefault(match.category, {**match.to_json(), "via": "prompt"})

        out, verdicts = [], []
        height, width = images.shape[-2:]
        sigma = options.blur * max(height, width)
        for i in range(batch):
            action = max((m["action"] for m in matched[i].values()), key=ACTIONS.index,
                         default="pass" if ran else NOT_CHECKED)
            image = images[i]
            if action == "block":
                blocking = [c for c, m in matched[i].items() if m["action"] == "block"]
                worst = max(blocking, key=lambda c: matched[i][c]["score"])
                image = placeholder(height, width, worst).to(images)
            elif action == "blur":
                image = gaussian_blur(images[i:i + 1], sigma)[0].clamp(-1, 1)
            out.append(image)
            verdicts.append({"action": action, "matched": matched[i], "scores": scores[i]})

        record: dict[str, Any] = {"policy": policy.name, "policy_sha256": policy.sha256}
        if prompt:
            record["prompt"] = {"matched": {m.category: m.to_json() for m in prompt_matches}, "similarity": similarity}
        record["images"] = verdicts
        if skipped:
            record["skipped"] = skipped
        record["checked_by"] = ran
        # Categories with image rules none of whose classifiers ran: their image check did not happen.
        record["unchecked_categories"] = [c for c, spec in policy.categories.items()
                                          if spec.image and not any(r.classifier in ran for r in spec.image)]
        for action, key in (("block", "withheld"), ("blur", "blurred"), ("flag", "flagged")):
            record[key] = [i for i, v in enumerate(verdicts) if v["action"] == action]
        record["not_checked"] = [] if ran else list(range(batch))
        record["summary"] = _summary(verdicts, ran, skipped, record["unchecked_categories"])
        return PostResult(torch.stack(out), record)

    @classmethod
    def inspect(cls, path: Path, image: Image.Image, ctx: InspectContext) -> dict[str, Any] | None:
        """For ``toolkit verify``: what the last safety check recorded in the file about its
        image (action, scores, summary), or None when no safety check ran on it."""
        try:
            records = file_post_records(path)
        except RecipeError:  # none (NoRecipeError), or a broken one, which verify reports itself
            return None
        checks = [(record, index) for record, index in records if record["name"] == cls.name]
        if not checks:
            return None
        record, index = checks[-1]
        body = record.get("record") or {}
        verdicts = body.get("images") or []
        verdict = verdicts[index] if isinstance(verdicts, list) and index < len(verdicts) else {}
        found = {"action": verdict.get("action", NOT_CHECKED), "scores": verdict.get("scores", {}),
                 "checked_by": body.get("checked_by", []), "summary": body.get("summary", "")}
        if verdict.get("matched"):
            found["matched"] = verdict["matched"]
        return found


def _summary(verdicts: list[dict[str, Any]], ran: list[str], skipped: dict[str, str], unchecked: list[str]) -> str:
    """One readable line for the console: what happened to which image, and why; and what
    was not checked, so that an image no classifier saw never reads as passed."""
    done = {"block": "withheld", "blur": "blurred", "flag": "flagged"}
    parts = []
    for i, verdict in enumerate(verdicts):
        if verdict["action"] in ("pass", NOT_CHECKED):
            continue
        why = ", ".join(f"{c} {m['score']:.2f}" for c, m in verdict["matched"].items())
        parts.append(f"image {i} {done[verdict['action']]} ({why})")
    reasons = "; ".join(f"{name}: {reason}" for name, reason in skipped.items())
    if not ran:
        head = (f"images not checked: no image classifier could run ({reasons})" if reasons
                else "images not checked: the policy has no image rules")
        return "; ".join([head, *parts])
    text = "; ".join(parts) if parts else f"images passed the checks that ran (by {', '.join(ran)})"
    if unchecked:
        text += f"; not checked: {', '.join(unchecked)} ({reasons})"
    return text


def _policy_label(policy: Policy) -> str:
    return "default safety policy" if policy.name == "default" else f"safety policy {policy.name}"


Rules = list[tuple[str, ImageRule]]  # (category, image rule) pairs


def _rules_by_classifier(policy: Policy, registry: Registry) -> dict[str, tuple[type[SafetyClassifier] | None, Rules]]:
    """classifier name -> (its class, or None when an optional one is not installed; the
    (category, rule) pairs that use it). Unknown classifiers and concepts are ConfigErrors."""
    registered = registry.safety_classifiers
    out: dict[str, tuple[type[SafetyClassifier] | None, Rules]] = {}
    for category, spec in policy.categories.items():
        for k, rule in enumerate(spec.image):
            where = f"{_policy_label(policy)}: categories.{category}.image.{k}"
            entry = registered.get(rule.classifier)
            if entry is None and not rule.optional:
                raise ConfigError(
                    f"{where}: no safety classifier '{rule.classifier}' is installed (installed: "
                    f"{', '.join(sorted(registered)) or 'none'}); install its plugin or mark the rule "
                    f"'optional: true' ({HELP})"
                )
            if entry is not None:
                reason = entry.obj.unavailable()
                if reason and not rule.optional:
                    raise ConfigError(f"{where}: classifier '{rule.classifier}' cannot run here: {reason} ({HELP})")
                try:
                    entry.obj.check_concepts(list(rule.concepts))
                except ValueError as error:
                    raise ConfigError(f"{where}: classifier '{rule.classifier}': {error} ({HELP})") from None
            out.setdefault(rule.classifier, (entry.obj if entry else None, []))[1].append((category, rule))
    return out


_instances: dict[type[SafetyClassifier], SafetyClassifier] = {}
_instances_lock = threading.Lock()


def _instance(cls: type[SafetyClassifier]) -> SafetyClassifier:
    """One instance per classifier class and process, so weights load once."""
    with _instances_lock:
        if cls not in _instances:
            _instances[cls] = cls()
        return _instances[cls]


@hookimpl
def register_postprocessors(register):
    register(Safety)


@hookimpl
def register_safety_classifiers(register):
    register(ClipSimilarity)
    register(ShapesConcepts)
