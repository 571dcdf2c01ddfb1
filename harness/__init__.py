"""faultfirst's harness: the fake LLM provider, the launcher, scoring and reports."""

__version__ = "0.1.0"
