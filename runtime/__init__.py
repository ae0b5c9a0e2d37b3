"""Running DSPy for dspyops: LM profiles, module construction, execution.

Imports only dspy, pydantic, the standard library and ``settings``; signatures are
passed in as ``type[dspy.Signature]``.
"""

from dspyops.runtime.executor import (
    ExecutionOutcome,
    Usage,
    configure_dspy_for_workers,
    run_program,
)
from dspyops.runtime.modules import MODULE_KINDS, StateMismatch, UnknownModuleKind, build_module
from dspyops.runtime.offline import OfflineLM
from dspyops.runtime.profiles import (
    LMProfile,
    ProfileError,
    ProfileRegistry,
    PublicProfile,
    UnknownProfile,
    load_profiles,
)

__all__ = [
    "MODULE_KINDS",
    "ExecutionOutcome",
    "LMProfile",
    "OfflineLM",
    "ProfileError",
    "ProfileRegistry",
    "PublicProfile",
    "StateMismatch",
    "UnknownModuleKind",
    "UnknownProfile",
    "Usage",
    "build_module",
    "configure_dspy_for_workers",
    "load_profiles",
    "run_program",
]
