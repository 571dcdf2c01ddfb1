"""What a submission declares, compared with the grader's environment
(`harness.submissions.dependencies`)."""

from __future__ import annotations

import importlib.metadata
import shlex
import sys

from harness.submissions import dependencies

PYTEST = importlib.metadata.version("pytest")


def test_what_is_lacking_is_what_is_not_installed_or_at_a_version_excluded() -> None:
    declared = [
        "pytest",  # installed
        "PyTest>=1",  # installed, under another spelling
        f"pytest!={PYTEST}",  # installed at the one version excluded
        "faultfirst-absent",  # installed nowhere
        "faultfirst-absent; sys_platform == 'nonesuch'",  # not for this Python
        "faultfirst-absent[extra]; python_version >= '3'",  # for this Python
        "not a requirement at all",  # pip would not understand it either
    ]
    assert dependencies.missing(declared) == [
        f"pytest!={PYTEST}",
        "faultfirst-absent",
        "faultfirst-absent[extra]; python_version >= '3'",
        "not a requirement at all",
    ]
    assert dependencies.missing([]) == []


def test_the_advice_names_all_of_them_and_a_command_safe_to_paste() -> None:
    unmet = [f"pytest!={PYTEST}", "faultfirst-absent", "evil; $(touch /tmp/x)"]
    line = dependencies.advice("alice", unmet)
    assert "\n" not in line
    assert line.startswith(
        f"alice declares 3 packages this environment lacks: pytest!={PYTEST} ({PYTEST} here), "
        "faultfirst-absent, evil; $(touch /tmp/x); grade it with --install-deps, or install them "
        "into the grader's environment ("
    )
    command = line.split("into the grader's environment (", 1)[1].removesuffix(")")
    assert shlex.split(command) == [sys.executable, "-m", "pip", "install", *unmet]
    one = dependencies.advice("bob", ["faultfirst-absent"])
    assert "bob declares a package this environment lacks: faultfirst-absent;" in one
    assert "or install it into" in one


def test_a_module_is_matched_to_the_package_of_its_name() -> None:
    assert dependencies.declares(["Faultfirst_Absent>=1; python_version >= '3'"], "faultfirst_absent")
    assert not dependencies.declares(["pyyaml"], "yaml")
    assert not dependencies.declares(["not a requirement"], "not")
