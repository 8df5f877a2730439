"""Every error a user can cause, under one base class.

The CLI prints ``str(error)`` on one line and exits non-zero, so each message says
what went wrong *and* what to do about it. ``assert`` is kept for internal invariants.
"""


class ToolkitError(Exception):
    """Base class: anything the user can fix. The CLI shows it without a traceback."""


class PluginError(ToolkitError):
    """A plugin failed to import or to register its components."""


class DuplicateComponentError(PluginError):
    """Two plugins registered a component of the same kind under the same name."""


class UnknownNameError(ToolkitError):
    """A generator, sampler, post-processor, dataset or model name that nobody registered."""


class UnsupportedRequestError(ToolkitError):
    """The request asks a model for something it cannot do (conditioning, size, sampler)."""


class InvalidRequestError(ToolkitError):
    """A request field is out of range or malformed."""


class BlockedPromptError(ToolkitError):
    """The safety policy refuses the prompt (``--post safety``); checked before any work."""


class ImageInputError(ToolkitError):
    """An input image is missing, corrupt, too large, or of an unusable size."""


class ModelError(ToolkitError):
    """A model folder is missing, incomplete, corrupt or tampered with."""


class RecipeError(ToolkitError):
    """A PNG carries no toolkit recipe, or one that cannot be replayed."""


class NoRecipeError(RecipeError):
    """An image carries no toolkit recipe at all (any photo): not an error for `post` or `verify`."""


class OutputExistsError(ToolkitError):
    """An output file or model folder already exists and the command was not told to replace it."""


class ConfigError(ToolkitError):
    """A configuration file or override is invalid (unknown key, bad value)."""


class UserConfigError(ConfigError):
    """$TOOLKIT_HOME/config.toml cannot be read, is not TOML, or holds an unknown setting or a
    value of the wrong type; or a setting it holds cannot be used here (a model nobody
    installed, a device this machine lacks)."""


class DatasetError(ToolkitError):
    """A dataset cannot be built here: something it reads (a font, a folder of data) is missing
    or unusable. The message says how to get it."""


class CheckpointError(ToolkitError):
    """A training checkpoint is missing, incomplete or corrupt."""


class TrainingError(ToolkitError):
    """Training cannot go on (for example, the loss stayed NaN or infinite)."""


class EvaluationError(ToolkitError):
    """A model cannot be evaluated: no classifier for its data, or no record of that data."""


class ToolkitWarning(UserWarning):
    """Something the user should know that does not stop the work (a blank sketch treated
    as no sketch, a mask resized to the image). The CLI prints it on one line."""
