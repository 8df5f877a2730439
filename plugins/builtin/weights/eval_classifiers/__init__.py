"""The evaluation classifiers we ship, trained here with `toolkit eval-classifier train`.

Each sub-folder (config.json + model.safetensors) scores the models trained on one dataset
at one size: `toolkit eval --model NAME` picks it by the dataset, size and options the
model's config.json records.

    digits-16   toolkit eval-classifier train --dataset digits --size 16 --out plugins/builtin/weights/eval_classifiers/digits-16
    shapes-32   toolkit eval-classifier train --dataset shapes --size 32 -o max_objects=1 --out plugins/builtin/weights/eval_classifiers/shapes-32
    emoji-64    toolkit eval-classifier train --dataset emoji --size 64 --width 24 --features 256 --blocks 5 --augment --steps 3000 --batch-size 64 --out plugins/builtin/weights/eval_classifiers/emoji-64
    emoji-64-heldout=false
                toolkit eval-classifier train --dataset emoji --size 64 -o heldout=false --width 24 --features 256 --blocks 5 --augment --steps 1500 --batch-size 64 --out plugins/builtin/weights/eval_classifiers/emoji-64-heldout=false
    emoji-64-label=tone
                toolkit eval-classifier train --dataset emoji --size 64 -o label=tone --width 16 --features 64 --blocks 4 --augment --steps 1000 --batch-size 64 --out plugins/builtin/weights/eval_classifiers/emoji-64-label=tone

The emoji ones: emoji-64 is trained on ldm-emoji's own training split, as every model's
classifier is, and gives the features its FID is measured in; the other two read `toolkit
eval --prompts` images for the emoji dataset's ``score_prompt``: the base emoji, by a judge
that knows every one of about 1,900 (the held-out ones too), and the skin tone.
"""

from pathlib import Path

from toolkit import hookimpl


@hookimpl
def register_eval_classifiers(register):
    for folder in sorted(Path(__file__).parent.iterdir()):
        if (folder / "config.json").is_file():
            register(folder)
