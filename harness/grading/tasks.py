"""The exercise's tasks. Their ids are stable: they key the scores in every report."""

from __future__ import annotations

import typing

TASKS: dict[str, str] = {
    "streaming": "Streaming",
    "cancellation": "Cancellation",
    "retries": "Retries",
    "fallback": "Fallback",
    "metadata": "Metadata",
    "timeouts": "Timeouts",
    "jobs": "Background jobs",
    "structured": "Structured output",
}
CORE_TASKS = ("streaming", "cancellation", "retries", "fallback")


def parse_tasks(text: str) -> tuple[str, ...]:
    """``"retries,fallback"`` -> ``("retries", "fallback")``, in the order of `TASKS`; ``all``
    means every task. Raises ValueError naming an unknown task."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return tuple(TASKS)
    unknown = [name for name in names if name not in TASKS]
    if unknown or not names:
        raise ValueError(
            f"unknown task {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(TASKS)}, or all"
        )
    return tuple(task for task in TASKS if task in names)


def name_tasks(template: str, line: str, tasks: typing.Sequence[str]) -> str:
    """`template` (a workflow, say) with its one `line` naming the core tasks made to name `tasks`
    instead; `line` formats them, comma-separated. Raises ValueError if the template does not
    name the core tasks once that way, rather than grading tasks nobody chose."""
    core = line.format(",".join(CORE_TASKS))
    if template.count(core) != 1:
        raise ValueError(f"the workflow template does not name its tasks once as {core!r}")
    return template.replace(core, line.format(",".join(tasks)))
