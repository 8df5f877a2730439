"""The web app (`toolkit app`): UI only, installed as ``toolkit_apps``.

Every widget is built from what is registered (models, samplers, post-processors, plugins'
own controls) and the request schema; every action calls the same Python API as the CLI
(``toolkit.generation.pipeline``). docs/app.md describes the page and its HTTP API.

    form.py      what the form offers, from the registry and the schema (no Gradio)
    widgets.py   controls from field specs, the sketchpad and the mask painter, plugins' controls
    controls.py  the form: its components and the mapping to and from request fields
    handlers.py  one handler per action: generate, compare, read a recipe
    api.py       the named HTTP endpoints, whose inputs are the request's fields
    layout.py    the page and its events
    server.py    launching it safely
"""
