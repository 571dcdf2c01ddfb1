"""The fault-injecting fake LLM provider.

Import what a scenario needs from here::

    from harness.fake_llm import FakeLLM, faults as f
"""

from . import faults
from .faults import Fault, FaultError
from .ledger import Call, Ledger
from .profiles import PROFILES
from .provider import DEFAULT_MODELS, FakeLLM

__all__ = ["DEFAULT_MODELS", "PROFILES", "Call", "FakeLLM", "Fault", "FaultError", "Ledger", "faults"]
