"""The ``faultfirst`` subcommands, one module each; `harness.cli` puts them together."""
