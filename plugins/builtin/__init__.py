"""The built-in plugins, installed under the import name ``toolkit_plugins``.

Each module here is an ordinary plugin registered through the ``toolkit`` entry-point
group in pyproject.toml, exactly like a third-party package: read them to learn the API.
"""
