"""The options of each front end, read from the code: the faultfirst commands' parsers and the
pytest plugin's table of settings."""

from __future__ import annotations

import argparse

from harness import cli, plugin_options, vocabulary

COMMANDS = ("grade", "play", "fake-llm")


def command(name: str) -> argparse.ArgumentParser:
    """The parser of ``faultfirst NAME``."""
    parser = cli._parser([name])
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    found: argparse.ArgumentParser = commands.choices[name]
    return found


def visible_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Long option -> its action, for every option --help shows (not -h itself)."""
    return {
        string: action
        for action in parser._actions
        if action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction)
        for string in action.option_strings
        if string.startswith("--")
    }


def pytest_words() -> set[str]:
    """The words of the plugin's options that ``pytest --help`` shows (``--faultfirst-WORD``)."""
    return {setting.word for setting in plugin_options.SHOWN}


def current_options() -> set[str]:
    """Every option --help shows, on the faultfirst commands and in the pytest plugin."""
    options = {option for name in COMMANDS for option in visible_options(command(name))}
    return options | {vocabulary.pytest_option(word) for word in pytest_words()}
