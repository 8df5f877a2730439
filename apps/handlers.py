"""One handler per action, each a thin call into the library the CLI uses: check what the
form or an API client sent, ``pipeline.plan``, ``pipeline.run`` with progress, and
``pipeline.save`` to write the very PNGs ``toolkit generate`` writes."""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any, Callable

import gradio as gr
from pydantic import ValidationError

from toolkit.errors import InvalidRequestError, ToolkitError, ToolkitWarning
from toolkit.generation import pipeline
from toolkit.generation.post import shortfalls
from toolkit.generation.recipe import read_recipe
from toolkit.generation.request import describe_validation_error, parse_request
from toolkit.generation.store import load_model
from toolkit.host.registry import Registry
from toolkit_apps.form import ModelCard, check_model, check_post, for_model

log = logging.getLogger(__name__)
Progress = Callable[..., None]


def readable(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Every failure reaches the page (and API clients) as one readable line, never a
    traceback; the server keeps serving. Bugs are logged with their traceback on the server."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except ToolkitError as error:
            raise gr.Error(str(error), print_exception=False) from None
        except ValidationError as error:
            raise gr.Error(describe_validation_error(error), print_exception=False) from None
        except Exception as error:  # noqa: BLE001 - the page gets a line, the log the traceback
            log.exception("%s failed", handler.__name__)
            raise gr.Error(f"the server failed: {type(error).__name__}: {error} (its log has the details)",
                           print_exception=False) from None

    return wrapper


# The page's progress bar moves at most this often (seconds): every update is an event to
# stream and a redraw in the browser, and a step of a small model takes a few milliseconds;
# per step, the updates cost a 64x64 image about 0.15 s of its 0.65 s.
PROGRESS_INTERVAL = 0.2


def steps_shown(progress: Progress) -> Callable[[int, int], None]:
    """The pipeline's ``progress(done, total)`` per step as Gradio progress updates: the
    first step, then at most one per ``PROGRESS_INTERVAL``, and the last."""
    shown = [float("-inf")]

    def step(done: int, total: int) -> None:
        now = perf_counter()
        if done == total or now - shown[0] >= PROGRESS_INTERVAL:
            shown[0] = now
            # The step count in the bar's own label: the page hides Gradio's line above the bar
            # (steps and a running clock) while a bar shows (toolkit_apps.layout.CSS).
            progress((done, total), desc=f"step {done} of {total}", unit="steps")

    return step


@dataclass
class Outcome:
    """One generation as the page shows it: the PNGs written, the result, the timings."""

    paths: list[Path]
    result: pipeline.GenerationResult
    seconds: float
    load_seconds: float

    def gallery(self) -> list[tuple[str, str]]:
        """(file, caption) per image; the caption gives the seed actually used."""
        return [(str(path), f"seed {self.result.seed} · #{recipe['index']}{self._verdict(recipe['index'])}")
                for path, recipe in zip(self.paths, self.result.recipes)]

    def _verdict(self, index: int) -> str:
        """What a post-processor that judges images one by one (safety) did to this one."""
        notes = []
        for record in self.result.post_records:
            verdicts = record["record"].get("images") if isinstance(record["record"], dict) else None
            if isinstance(verdicts, list) and index < len(verdicts) and isinstance(verdicts[index], dict):
                action = verdicts[index].get("action")
                if action and action != "pass":
                    notes.append(f"{record['name']}: {action}")
        return "".join(f" · {note}" for note in notes)

    def report(self) -> str:
        """Markdown: the chain, the seed, what each post-processor decided, the time."""
        loaded = f" (loading the model took {self.load_seconds:.1f} s; it stays loaded)" if self.load_seconds > 0.5 else ""
        lines = [f"**{' → '.join(self.result.plan.chain)}** · seed **{self.result.seed}** · "
                 f"{len(self.paths)} image(s) in {self.seconds:.2f} s{loaded}"]
        for record in self.result.post_records:
            body = record["record"]
            text = body.get("summary") if isinstance(body, dict) and "summary" in body else json.dumps(body)
            lines.append(f"- **{record['name']}** ({record['stage']}): {text}")
            if record.get("shortfall"):
                lines.append(f"  - **incomplete:** {record['shortfall']}")
        return "\n".join(lines)

    def info(self) -> dict[str, Any]:
        """What an API client gets beside the files: seeds, the chain and the post records."""
        return {"seed": self.result.seed, "model": self.result.plan.model.name, "chain": self.result.plan.chain,
                "images": [{"file": p.name, "index": r["index"]} for p, r in zip(self.paths, self.result.recipes)],
                "post": self.result.post_records, "seconds": round(self.seconds, 3)}


class Actions:
    """The app's actions on one registry, model set and output folder.

    Every generation runs on one thread of its own (``torch_thread``). PyTorch's OpenMP pool
    belongs to the thread that starts the work: generations spread over Gradio's worker
    threads each grow a pool, whose idle threads spin on the same cores, and one 64x64 image
    took about 1.5 times as long as through the Python API (benchmarks/app_latency.py).
    Generations wait for each other anyway (one at a time, ``concurrency_limit=1``).
    """

    def __init__(self, registry: Registry, cards: dict[str, ModelCard], out_dir: Path, device: str = "cpu"):
        self.registry, self.cards, self.out_dir, self.device = registry, cards, Path(out_dir), device
        self.torch_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="toolkit-generate")

    def on_torch_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on ``torch_thread``, in this thread's context: Gradio finds the event
        that ``gr.Progress`` and ``gr.Warning`` report to through context variables."""
        return self.torch_thread.submit(contextvars.copy_context().run, fn, *args).result()

    def request(self, fields: dict[str, Any]) -> pipeline.GenerationRequest:
        """A request from web input: empty values mean "the default", the model must be one
        the form offers, post-processor options are limited to what a browser may set."""
        fields = {k: v for k, v in fields.items() if v is not None and v != "" and v != []}
        fields["model"] = check_model(fields.get("model"), self.cards)
        post = fields.get("post", [])
        if not isinstance(post, list):
            raise InvalidRequestError("post: expected a list like [{\"name\": \"sepia\", \"options\": {\"strength\": 0.5}}]")
        fields["post"] = check_post(post, self.registry)
        return parse_request(fields)

    def generate(self, fields: dict[str, Any], progress: Progress) -> Outcome:
        """Plan, run and save one request (on ``torch_thread``); ``progress((done, total),
        desc=...)`` per step."""
        return self.on_torch_thread(self._generate, fields, progress)

    def _generate(self, fields: dict[str, Any], progress: Progress) -> Outcome:
        started = perf_counter()
        planned = pipeline.plan(self.request(fields), self.registry)
        progress(0, desc=f"loading model {planned.model.name}")
        load_model(planned.model, self.registry, self.device)  # kept by the store's LRU for the run below
        load_seconds = perf_counter() - started
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ToolkitWarning)
            result = pipeline.run(planned, device=self.device, progress=steps_shown(progress))
        for warning in caught:
            if issubclass(warning.category, ToolkitWarning):
                gr.Warning(str(warning.message))
        for line in shortfalls(result.post_records):  # the images are written, but not all was done
            gr.Warning(f"incomplete: {line}")
        paths = pipeline.save(result, self.out_dir)
        return Outcome(paths, result, perf_counter() - started, load_seconds)

    def compare(self, fields: dict[str, Any], other_model: str | None, other_sampler: str | None,
                progress: Progress) -> tuple[Outcome, Outcome]:
        """The same request and seed on two models (or two samplers), one after the other."""
        if not other_model and not other_sampler:
            raise InvalidRequestError("compare: pick a second model or a second sampler")
        first = self.generate(fields, progress)
        card = self.cards[check_model(other_model or first.result.plan.model.name, self.cards)]
        second_fields = for_model(fields, card) | {"seed": first.result.seed}
        if other_sampler:
            if "sampler" not in card.usable:
                raise InvalidRequestError(f"compare: model '{card.name}' samples in one step; it takes no sampler")
            second_fields["sampler"] = other_sampler
        return first, self.generate(second_fields, progress)

    def recipe(self, path: str | Path | None) -> dict[str, Any]:
        """The request inside a toolkit PNG (uploaded, so it is in Gradio's upload folder)."""
        if not path:
            raise InvalidRequestError("load recipe: upload a PNG made by toolkit first")
        recipe = read_recipe(path)
        request = dict(recipe["request"])
        if request.get("model") not in self.cards:
            raise InvalidRequestError(f"this PNG was made by model '{request.get('model')}', which is not installed "
                                      "here (see `toolkit models`)")
        return request
