"""The README against the code: its quick start is what CI runs, and it names every option of
every front end, and the retired ones only where it lists them."""

import re
from pathlib import Path

from front_ends import current_options
from harness import vocabulary

ROOT = Path(__file__).resolve().parent.parent


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_quick_start_is_two_commands() -> None:
    assert len(quick_start_commands()) == 2


def test_ci_runs_the_readme_test_command() -> None:
    test_command = quick_start_commands()[1]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


# -- options: every one the code has is in the README; the retired names only where they are listed

DOCUMENTS = ["README.md", "docs/reports.md", "candidate/README.md", "exercise_app/BRIEF.md",
             "candidate/.github/workflows/faultfirst.yml"]  # fmt: skip
RENAMED = "Renamed so that the front ends agree"


def test_the_readme_names_every_option() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [option for option in sorted(current_options())
               if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", readme)]  # fmt: skip
    assert missing == []


def test_retired_option_names_appear_only_where_the_readme_lists_them() -> None:
    old = {**vocabulary.OLD_GRADE_NAMES, **vocabulary.OLD_PLAY_NAMES, **vocabulary.OLD_PYTEST_NAMES}
    retired = set(old) - current_options()  # --tasks, say, is an old name only in pytest
    assert retired
    for document in DOCUMENTS:
        text = (ROOT / document).read_text()
        if document == "README.md":
            before, after = text.split(RENAMED, 1)
            listed, rest = after.split("\n\n", 1)
            assert all(name in listed for name in old), "the README lists every old name"
            text = before + rest
        found = [name for name in sorted(retired)
                 if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)]  # fmt: skip
        assert found == [], document
