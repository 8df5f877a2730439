"""The model folders we ship, trained here with `toolkit train configs/NAME.yaml`.

Each sub-folder is a model (config.json + fp16 safetensors) found by `--model NAME`.
"""

from pathlib import Path

from toolkit import hookimpl


@hookimpl
def register_models(register):
    for folder in sorted(Path(__file__).parent.iterdir()):
        if (folder / "config.json").is_file():
            register(folder)
