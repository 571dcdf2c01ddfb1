"""Tests of the fault-injecting fake LLM provider, through a real HTTP client over loopback."""
