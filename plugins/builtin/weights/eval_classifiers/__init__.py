"""The evaluation classifiers we ship, trained here with `toolkit eval-classifier train`.

Each sub-folder (config.json + model.safetensors) scores the models trained on one dataset
at one size: `toolkit eval --model NAME` picks it by the dataset, size and options the
model's config.json records.

    digits-16   toolkit eval-classifier train --dataset digits --size 16 --out plugins/builtin/weights/eval_classifiers/digits-16
    shapes-32   toolkit eval-classifier train --dataset shapes --size 32 -o max_objects=1 --out plugins/builtin/weights/eval_classifiers/shapes-32
"""

from pathlib import Path

from toolkit import hookimpl


@hookimpl
def register_eval_classifiers(register):
    for folder in sorted(Path(__file__).parent.iterdir()):
        if (folder / "config.json").is_file():
            register(folder)
