"""Contract checks for every kind of component: what toolkit relies on from a generator's
neighbours (post-processors, conditioners, samplers, datasets, safety classifiers).

Each ``check_*`` function takes the registered object and what it needs (a registry, small
inputs) and raises ``AssertionError`` with a message naming the component and the broken
promise. toolkit's own tests run them over every registered component
(tests/plugins/test_contract_*.py); a plugin's author runs them on their package the same
way (docs/plugins.md, "Running the contract tests on your plugin")::

    from toolkit.contracts import check_postprocessor
    from toolkit.host.loading import plugins_with_extra

    _, registry = plugins_with_extra([("mine", toolkit_mine)])
    check_postprocessor(registry.get("postprocessors", "mine"), registry)
"""

from .conditioners import check_conditioner
from .datasets import check_dataset, check_dataset_refuses_unknown_arguments, check_dataset_samples
from .postprocessors import (
    check_postprocessor,
    check_postprocessor_declaration,
    check_postprocessor_inspect,
    check_postprocessor_plans,
    check_postprocessor_process,
    check_postprocessor_refuses_unknown_options,
)
from .safety import check_safety_classifier
from .samplers import check_sampler, check_sampler_callback, check_sampler_randomness, check_sampler_result

__all__ = [
    "check_conditioner", "check_dataset", "check_dataset_refuses_unknown_arguments", "check_dataset_samples",
    "check_postprocessor", "check_postprocessor_declaration", "check_postprocessor_inspect",
    "check_postprocessor_plans", "check_postprocessor_process", "check_postprocessor_refuses_unknown_options", "check_safety_classifier",
    "check_sampler", "check_sampler_callback", "check_sampler_randomness", "check_sampler_result",
]
