"""Evidence: what the app did against the fake provider during one scenario, as a timeline.

Reports draw it from the ledger: each attempt with its model, the fault it met, what became of it,
the wait since the attempt before, the tokens it cost, and when the app hung up; and when the user
went away. Times are seconds since the scenario's app was ready.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

from .sanitize import one_line

if typing.TYPE_CHECKING:  # the ledger's calls; the fake itself is not needed to read a grade
    from ..fake_llm import Call


@dataclass(frozen=True)
class Attempt:
    number: int
    model: str
    stream: bool
    fault: str
    status: int | None
    outcome: str  # completed, disconnected (the app hung up), reset, cut, rejected, aborted...
    at: float  # when the provider received it
    gap: float | None  # since the previous attempt was received
    first_token: float | None  # when its first token was generated
    ended: float | None
    tokens: int  # generated, so billed
    hung_up: float | None  # when the app closed the connection before the response was complete


@dataclass(frozen=True)
class Evidence:
    attempts: list[Attempt] = field(default_factory=list)
    user_left: list[float] = field(default_factory=list)  # when a user closed a request early
    tokens_billed: int = 0
    tokens_unread: int = 0  # billed but read by nobody: repeated attempts, work after users left


@dataclass
class UserActivity:
    """What the scenario's users did, as the scenario kit saw it: the app cannot tell us."""

    left: list[tuple[str, float]] = field(default_factory=list)  # (question, when they left)
    read: set[str] = field(default_factory=set)  # questions whose answer a user read to the end


def evidence_from(calls: list[Call], started_at: float, users: UserActivity) -> Evidence:
    """The evidence of a scenario whose app was ready at `started_at` (``time.monotonic()``)."""

    def since(moment: float | None) -> float | None:
        return None if moment is None else round(moment - started_at, 4)

    attempts = []
    previous: Call | None = None
    for number, call in enumerate(calls, 1):
        gap = None if previous is None else round(call.received_at - previous.received_at, 4)
        attempts.append(
            Attempt(
                number=number,
                model=one_line(call.model, 40),  # the app names it
                stream=call.stream,
                fault=call.fault,
                status=call.status,
                outcome=call.outcome,
                at=since(call.received_at) or 0.0,
                gap=gap,
                first_token=since(call.first_token_at),
                ended=since(call.ended_at),
                tokens=call.tokens,
                hung_up=since(call.disconnected_at),
            )
        )
        previous = call
    return Evidence(
        attempts=attempts,
        user_left=sorted(typing.cast(float, since(moment)) for _, moment in users.left),
        tokens_billed=sum(call.tokens for call in calls),
        tokens_unread=unread_tokens(calls, users),
    )


def unread_tokens(calls: list[Call], users: UserActivity) -> int:
    """Tokens nobody read: those of every attempt but the last for one question (a retry throws
    the earlier attempt's answer away, or shows it twice), and those the last attempt generated
    after every user asking that question had gone."""
    questions = {question for question, _ in users.left} | users.read
    groups: dict[str, list[Call]] = {}
    for call in calls:
        asked = [question for question in questions if question in call.prompt]
        # The longest: a question may be part of another one (and a set has no stable order).
        question = max(asked, key=lambda q: (len(q), q)) if asked else call.prompt
        groups.setdefault(question, []).append(call)
    unread = 0
    for question, group in groups.items():
        *earlier, last = group
        unread += sum(call.tokens for call in earlier)
        left = [moment for asked, moment in users.left if asked == question]
        if left and question not in users.read:
            unread += last.tokens_after(max(left))
    return unread


def timeline(evidence: Evidence) -> list[str]:
    """The evidence as aligned text lines, for the terminal and Markdown."""
    if not evidence.attempts:
        lines = ["  (the app made no call to the model)"]
    else:
        lines = [f"  {'#':>2}  {'at':>7}  {'wait':>7}  {'model':<11}  {'fault':<28}  result"]
        lines += [_attempt_line(attempt) for attempt in evidence.attempts]
    for moment in evidence.user_left:
        lines.append(f"  the user went away at {moment:.3f}s")
    lines.append(
        f"  tokens billed: {evidence.tokens_billed}, read by nobody: {evidence.tokens_unread}"
    )
    return lines


def _attempt_line(attempt: Attempt) -> str:
    wait = "" if attempt.gap is None else f"+{attempt.gap:.3f}s"
    kind = "stream" if attempt.stream else "json"
    result = f"{attempt.status or '-'} {attempt.outcome}, {attempt.tokens} tokens ({kind})"
    if attempt.hung_up is not None:
        result += f", app hung up at {attempt.hung_up:.3f}s"
    fault = attempt.fault if len(attempt.fault) <= 28 else attempt.fault[:27] + "…"
    return f"  {attempt.number:>2}  {attempt.at:>6.3f}s  {wait:>7}  {attempt.model:<11}  {fault:<28}  {result}"
