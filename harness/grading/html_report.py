"""The grade as one self-contained HTML page, for an interviewer to open in a browser.

The terminal and Markdown reports print the evidence as aligned text; this page draws it. Each
scenario's calls to the fake provider become a small timeline picture (inline SVG), because "the
app retried at once, twice, while the user had already gone" is seen at a glance in a picture and
only worked out from a table of times.

The page needs nothing but itself: inline CSS and SVG, no script, no font, image or link that
leaves the file, so it can be attached to an email or archived next to the JSON and still open
the same years later, offline. Every text that comes from the grade is HTML-escaped: reasons can
quote what the candidate's app printed.
"""

from __future__ import annotations

import datetime
import html
import math
import re
from dataclasses import dataclass
from pathlib import Path

from .evidence import Attempt, Evidence
from .results import Grade, ScenarioResult, Status
from .tasks import TASKS

MAX_ROWS = 60  # attempts drawn per picture; the JSON report has every one

# The picture's geometry, in SVG user units (the picture scales to the page's width).
_WIDTH = 960
_LABELS = 12  # x where the attempt labels start
_PLOT_LEFT = 330
_PLOT_RIGHT = 940
_ROW = 36  # height of one attempt's row
_BAR = 14  # height of a bar inside its row
_CHAR = 6.4  # rough width of a character of the picture's 11-unit font, to place labels
_LANE = 14  # height of one line of labels above or below the rows

# How each status looks: a CSS class and a sign, so the badge does not rely on colour alone.
_STATUS_LOOK = {
    Status.PASSED.value: ("passed", "✓"),
    Status.FAILED.value: ("failed", "✗"),
    Status.TIMED_OUT.value: ("timed-out", "◷"),
    Status.APP_DID_NOT_START.value: ("no-start", "⊘"),
    Status.APP_CRASHED.value: ("crashed", "↯"),
    Status.NOT_RUN.value: ("not-run", "–"),
    Status.HARNESS_ERROR.value: ("harness", "⚠"),
}
_UNKNOWN_LOOK = ("other", "•")  # a status added after this page was written

# Outcomes as the picture colours them: what the app got from the provider.
_BROKEN = {"reset", "cut", "aborted", "rejected"}


def grade_html(grade: Grade, *, started_at: float | None = None) -> str:
    """The grade as a complete HTML document; `started_at` is the wall clock time
    (``time.time()``) the run started, shown in the header when given."""
    body = [
        _header(grade, started_at),
        _task_table(grade),
        _reading_guide(),
        *(_task_section(grade, task, number) for number, task in enumerate(_tasks_of(grade))),
        f"<footer>faultfirst {_e(grade.harness_version)} · times are seconds since the "
        "scenario’s app was ready · the JSON report (<code>--json</code>) has every "
        "field</footer>",
    ]
    title = f"faultfirst: {grade.submission} — {grade.earned} / {grade.possible}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        '<body>\n<main>\n' + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )


def write_html(path: str | Path, grade: Grade, *, started_at: float | None = None) -> None:
    """Write `grade_html` to `path` (UTF-8), replacing it, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(grade_html(grade, started_at=started_at), encoding="utf-8")


# The page


def _e(text: object) -> str:
    """`text` safe anywhere in the page: in an element, an attribute, or the SVG."""
    return html.escape(str(text), quote=True)


def _status_text(result: ScenarioResult) -> str:
    status: object = result.status
    return str(getattr(status, "value", status))


def _header(grade: Grade, started_at: float | None) -> str:
    facts = [
        ("seed", str(grade.seed)),
        ("app mode", grade.app_mode),
        ("isolation", grade.isolation.summary().removeprefix("isolation: ")),
        ("duration", f"{grade.duration:.1f} s"),
    ]
    if started_at is not None:
        when = datetime.datetime.fromtimestamp(started_at, tz=datetime.UTC)
        facts.insert(0, ("started", when.strftime("%Y-%m-%d %H:%M:%S UTC")))
    facts += [
        ("tokens billed", str(grade.tokens_billed)),
        ("read by nobody", str(grade.tokens_unread)),
    ]
    items = "".join(
        f'<div class="fact{" warn" if name == "read by nobody" and grade.tokens_unread else ""}">'
        f"<dt>{_e(name)}</dt><dd>{_e(value)}</dd></div>"
        for name, value in facts
    )
    files = ""
    if grade.files:  # names exactly what was graded, to compare with the candidate's copy
        count = f"{grade.files} file{'s' if grade.files != 1 else ''}"
        files = f'<p class="digest">{count} · <code>{_e(grade.digest)}</code></p>'

    banner = ""
    if grade.status == "ungradable":
        banner = (
            '<p class="banner">The app could not be graded: it never started. '
            "The reasons below say why.</p>"
        )
    elif grade.status == "incomplete":
        banner = (
            '<p class="banner">The run was stopped before every scenario ran: those score '
            "nothing.</p>"
        )
    bonus_earned = sum(score.bonus_earned for score in grade.task_scores())
    bonus = f' <span class="bonus-total">+{bonus_earned} bonus</span>' if bonus_earned else ""
    return (
        "<header>"
        '<p class="eyebrow">faultfirst grade</p>'
        f'<h1 class="submission">{_e(grade.submission)}</h1>{files}'
        f'<p class="total"><span class="big">{grade.earned}</span>'
        f'<span class="of"> / {grade.possible} points</span>'
        f'<span class="pct">{grade.percentage:.0f}%</span>{bonus}</p>'
        f"{_meter(grade.earned, grade.possible, wide=True)}"
        f"{banner}<dl class=\"facts\">{items}</dl></header>"
    )


def _meter(earned: int, possible: int, *, wide: bool = False) -> str:
    share = earned / possible if possible else 0.0
    return (
        f'<div class="meter{" wide" if wide else ""}" role="img" '
        f'aria-label="{earned} of {possible} points">'
        f'<div style="width:{100 * share:.1f}%"></div></div>'
    )


def _tasks_of(grade: Grade) -> list[str]:
    """The graded tasks in order, then any other task a result belongs to."""
    tasks = list(grade.tasks)
    tasks += [r.scenario.task for r in grade.results if r.scenario.task not in tasks]
    return list(dict.fromkeys(tasks))


def _task_table(grade: Grade) -> str:
    scores = grade.task_scores()
    with_bonus = any(score.bonus_possible for score in scores)
    rows = []
    for score in scores:
        mine = [r for r in grade.results if r.scenario.task == score.task]
        passed = sum(r.status is Status.PASSED for r in mine)
        bonus = (
            f'<td class="num">{_bonus(score.bonus_earned, score.bonus_possible)}</td>'
            if with_bonus
            else ""
        )
        rows.append(
            f'<tr><th scope="row"><a href="#task-{_slug(score.task)}">{_e(score.title)}</a></th>'
            f'<td class="num">{score.earned} / {score.possible}</td>'
            f"<td>{_meter(score.earned, score.possible)}</td>{bonus}"
            f'<td class="num">{passed} of {len(mine)}</td></tr>'
        )
    bonus_head = '<th scope="col" class="num">Bonus</th>' if with_bonus else ""
    bonus_total = ""
    if with_bonus:
        earned = sum(score.bonus_earned for score in scores)
        possible = sum(score.bonus_possible for score in scores)
        bonus_total = f'<td class="num">{_bonus(earned, possible)}</td>'
    passed_total = sum(r.status is Status.PASSED for r in grade.results)
    return (
        '<section class="tasks"><h2>Tasks</h2><table>'
        '<thead><tr><th scope="col">Task</th><th scope="col" class="num">Points</th>'
        f'<th scope="col"></th>{bonus_head}<th scope="col" class="num">Scenarios passed</th>'
        "</tr></thead><tbody>" + "".join(rows) + "</tbody>"
        f'<tfoot><tr><th scope="row">Total</th><td class="num">{grade.earned} / '
        f"{grade.possible}</td><td>{_meter(grade.earned, grade.possible)}</td>{bonus_total}"
        f'<td class="num">{passed_total} of {len(grade.results)}</td></tr></tfoot>'
        "</table></section>"
    )


def _bonus(earned: int, possible: int) -> str:
    return f"+{earned} / {possible}" if possible else ""


def _reading_guide() -> str:
    return (
        '<section class="guide"><h2>Reading the timelines</h2><p>Each picture shows one '
        "scenario’s calls to the fake provider, one row per call, against seconds since the "
        "app was ready.</p>"
        + _legend({"ok", "failed", "hung", "open", "token", "gap", "left", "wasted"})
        + "</section>"
    )


_LEGEND = {
    "ok": '<span class="key"><i class="sw ok"></i>answered</span>',
    "failed": '<span class="key"><i class="sw failed"></i>error reply, reset or cut off</span>',
    "hung": '<span class="key"><i class="sw hung"></i>the app hung up</span>',
    "open": '<span class="key"><i class="sw open"></i>still open at the end</span>',
    "other": '<span class="key"><i class="sw other"></i>other outcome</span>',
    "token": '<span class="key"><i class="sw token"></i>first token</span>',
    "gap": '<span class="key"><i class="sw gap"></i>wait before a call</span>',
    "left": '<span class="key"><i class="sw left"></i>a user left</span>',
    "wasted": '<span class="key"><i class="sw wasted"></i>running after every user had left'
    "</span>",
}


def _legend(kinds: set[str]) -> str:
    return '<p class="legend">' + "".join(_LEGEND[k] for k in _LEGEND if k in kinds) + "</p>"


def _task_section(grade: Grade, task: str, number: int) -> str:
    results = [r for r in grade.results if r.scenario.task == task]
    score = next((s for s in grade.task_scores() if s.task == task), None)
    points = f"{score.earned} / {score.possible} points" if score else "not graded"
    if score and score.bonus_possible:
        points += f", {_bonus(score.bonus_earned, score.bonus_possible)} bonus"
    cards = [_scenario_card(result, f"{number}-{index}") for index, result in enumerate(results)]
    return (
        f'<section class="task" id="task-{_slug(task)}">'
        f'<h2>{_e(TASKS.get(task, task))} <span class="task-points">{_e(points)}</span></h2>'
        + ("".join(cards) or '<p class="note">No scenario of this task ran.</p>')
        + "</section>"
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def _scenario_card(result: ScenarioResult, uid: str) -> str:
    scenario = result.scenario
    status = _status_text(result)
    look, sign = _STATUS_LOOK.get(status, _UNKNOWN_LOOK)
    chips = []
    if scenario.hidden:
        chips.append('<span class="chip hidden">hidden</span>')
    if scenario.bonus:
        chips.append('<span class="chip">bonus</span>')
    if result.counted:
        worth = f"{result.earned} / {scenario.points} pt" + ("s" if scenario.points != 1 else "")
    else:
        worth = "not counted"
    parts = [
        f'<article class="scenario {look}" id="scenario-{_slug(scenario.id)}-{uid}">'
        '<div class="scenario-head">'
        f'<span class="badge {look}"><span aria-hidden="true">{sign}</span> {_e(status)}</span>'
        f'<h3>{_e(scenario.title)}</h3>{"".join(chips)}'
        f'<span class="worth">{_e(worth)}</span></div>'
    ]
    if result.reason:
        parts.append(_labelled("why", "Why", f"<pre>{_e(result.reason)}</pre>"))
    elif result.status is not Status.PASSED:
        parts.append(_labelled("why", "Why", "<p>(no reason given)</p>"))
    if result.status is Status.HARNESS_ERROR:
        note = "<p>A bug in the grader, not in the app: it costs no points.</p>"
        parts.append(_labelled("hint", "Note", note))
    elif result.status is not Status.PASSED:
        parts.append(_labelled("hint", "Hint", f"<p>{_e(scenario.hint)}</p>"))
    parts.append(_evidence_figure(result.evidence, result.duration, uid))
    parts.append("</article>")
    return "".join(parts)


def _labelled(kind: str, label: str, content: str) -> str:
    return f'<div class="{kind}"><span class="label">{label}</span>{content}</div>'


def _evidence_figure(evidence: Evidence, duration: float, uid: str) -> str:
    calls = len(evidence.attempts)
    if not calls:
        left = ", ".join(_secs(moment) for moment in evidence.user_left)
        went = f" A user left at {left}." if left else ""
        return f'<p class="note no-calls">No calls to the provider.{went}</p>'
    unread = evidence.tokens_unread
    caption = (
        f"{calls} call{'s' if calls != 1 else ''} to the provider · "
        f"{evidence.tokens_billed} tokens billed · "
        + (
            f'<strong class="wasted-callout">{unread} read by nobody</strong>'
            if unread
            else "none wasted"
        )
    )
    chart = _Chart(evidence, duration, uid)
    picture = chart.svg()  # drawing it finds what the legend must explain
    more = ""
    if calls > MAX_ROWS:
        more = (
            f'<p class="note">{calls - MAX_ROWS} more calls are not drawn; the JSON report has '
            "them all.</p>"
        )
    return (
        f'<figure class="timeline"><figcaption>{caption}</figcaption>{picture}{more}'
        f"{_legend(chart.kinds)}</figure>"
    )


# The picture


def _secs(moment: float) -> str:
    """Seconds for people: three significant digits, ``0.21 s``, ``2.03 s``, ``16.2 s``."""
    if abs(moment) >= 100:
        return f"{moment:.0f} s"
    return f"{moment:.3g} s"


def _category(attempt: Attempt) -> str:
    """How the attempt's bar is coloured: what became of it, as the app saw it."""
    if attempt.outcome == "disconnected" or attempt.hung_up is not None:
        return "hung"
    if attempt.ended is None:
        return "open"
    if attempt.outcome in _BROKEN or (attempt.status is not None and attempt.status >= 400):
        return "failed"
    if attempt.outcome == "completed":
        return "ok"
    return "other"


@dataclass
class _Label:
    x: float  # where the text starts
    width: float


class _Lanes:
    """Places short labels on a few lines so that they do not overlap; a label that finds no
    room is left out (its line in the picture stays)."""

    def __init__(self, count: int) -> None:
        self.lanes: list[list[_Label]] = [[] for _ in range(count)]

    def place(self, x: float, width: float) -> tuple[int, float] | None:
        start = min(max(x - width / 2, _PLOT_LEFT), _PLOT_RIGHT - width)
        for number, lane in enumerate(self.lanes):
            apart = (start + width + 6 < o.x or start > o.x + o.width + 6 for o in lane)
            if all(apart):
                lane.append(_Label(start, width))
                return number, start
        return None


class _Chart:
    """One scenario's evidence as an SVG timeline: a row per attempt, time running right."""

    def __init__(self, evidence: Evidence, duration: float, uid: str) -> None:
        self.evidence = evidence
        self.attempts = evidence.attempts[:MAX_ROWS]
        self.uid = uid
        self.start, self.end = _axis(evidence, duration)
        self.kinds: set[str] = set()
        self.last_left = max(evidence.user_left) if evidence.user_left else None
        self.hung_ups = sorted(a.hung_up for a in self.attempts if a.hung_up is not None)
        self.top = 8 + _LANE * (2 if evidence.user_left else 0)
        self.bottom_lanes = 2 if self.hung_ups else 0
        self.rows_end = self.top + _ROW * len(self.attempts)
        self.height = self.rows_end + 34 + _LANE * self.bottom_lanes

    def x(self, moment: float) -> float:
        share = (min(max(moment, self.start), self.end) - self.start) / (self.end - self.start)
        return round(_PLOT_LEFT + (_PLOT_RIGHT - _PLOT_LEFT) * share, 1)

    def svg(self) -> str:
        parts = [
            f'<svg class="chart" viewBox="0 0 {_WIDTH} {self.height}" '
            f'width="{_WIDTH}" height="{self.height}" role="img" '
            f'aria-label="Timeline of {len(self.evidence.attempts)} calls to the provider">',
            "<defs>"
            f'<pattern id="hatch-{self.uid}" width="6" height="6" '
            'patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
            '<rect class="hatch-line" width="2.5" height="6"/></pattern></defs>',
        ]
        parts += self._grid()
        parts += self._rows()
        parts += self._user_left()
        parts += self._hang_ups()
        parts.append("</svg>")
        return "".join(parts)

    def _grid(self) -> list[str]:
        step = _nice_step((self.end - self.start) / 6)
        decimals = next(d for d in range(8) if round(step * 10**d, 6) % 1 == 0)
        parts = []
        axis_y = self.rows_end + 4
        number = math.ceil(self.start / step - 1e-6)
        while number * step <= self.end + step * 1e-6:
            tick = number * step
            x = self.x(tick)
            parts.append(
                f'<line class="grid" x1="{x}" y1="{self.top - 4}" x2="{x}" y2="{axis_y}"/>'
                f'<text class="tick" x="{x}" y="{axis_y + 13}" text-anchor="middle">'
                f"{tick:.{decimals}f}</text>"
            )
            number += 1
        if self.start > 0:  # the axis does not start at 0: say so with a break mark
            parts.append(
                f'<path class="axis-break" d="M{_PLOT_LEFT - 5} {axis_y + 4}l4 -8M{_PLOT_LEFT} '
                f'{axis_y + 4}l4 -8"><title>the axis starts at {_e(_secs(self.start))}, not 0'
                "</title></path>"
            )
        parts.append(
            f'<line class="axis" x1="{_PLOT_LEFT}" y1="{axis_y}" x2="{_PLOT_RIGHT}" y2="{axis_y}"/>'
            f'<text class="axis-title" x="{_PLOT_LEFT - 30}" y="{axis_y + 13}" text-anchor="end">'
            "seconds since the app was ready</text>"
        )
        for number in range(len(self.attempts)):
            if number % 2:
                y = self.top + _ROW * number
                stripe = f'<rect class="stripe" x="0" y="{y}" width="{_WIDTH}" height="{_ROW}"/>'
                parts.insert(0, stripe)
        return parts

    def _rows(self) -> list[str]:
        parts = []
        previous: Attempt | None = None
        for row, attempt in enumerate(self.attempts):
            parts += self._row(row, attempt, previous)
            previous = attempt
        return parts

    def _row(self, row: int, attempt: Attempt, previous: Attempt | None) -> list[str]:
        y = self.top + _ROW * row
        bar_y = y + (_ROW - _BAR) / 2 + 4
        mid = bar_y + _BAR / 2
        category = _category(attempt)
        self.kinds.add(category)
        finish = attempt.ended if attempt.hung_up is None else attempt.hung_up
        start_x = self.x(attempt.at)
        end_x = self.x(self.end if finish is None else finish)
        width = max(end_x - start_x, 2.5)
        tip = _attempt_tip(attempt)
        parts = [
            f'<text class="row-title" x="{_LABELS}" y="{y + 15}">'
            f"{_e(_cut(_row_title(attempt), 50))}<title>{_e(tip)}</title></text>"
            f'<text class="row-sub" x="{_LABELS}" y="{y + 29}">'
            f"{_e(_cut(_row_detail(attempt), 54))}<title>{_e(tip)}</title></text>",
            f'<rect class="bar {category}" data-attempt="{attempt.number}" x="{start_x}" '
            f'y="{bar_y}" width="{width:.1f}" height="{_BAR}" rx="2">'
            f"<title>{_e(tip)}</title></rect>",
        ]
        if self.last_left is not None and self.evidence.tokens_unread:
            running_to = self.end if finish is None else finish
            if running_to > self.last_left and running_to > attempt.at:
                wasted_x = self.x(max(attempt.at, self.last_left))
                self.kinds.add("wasted")
                parts.append(
                    f'<rect class="wasted" x="{wasted_x}" y="{bar_y}" '
                    f'width="{max(end_x - wasted_x, 1.5):.1f}" height="{_BAR}" '
                    f'fill="url(#hatch-{self.uid})"/>'
                )
        if attempt.first_token is not None:
            self.kinds.add("token")
            tx = self.x(attempt.first_token)
            parts.append(
                f'<path class="token" d="M{tx} {bar_y - 3}l4.5 {_BAR / 2 + 3}l-4.5 '
                f'{_BAR / 2 + 3}l-4.5 {-_BAR / 2 - 3}z"><title>first token at '
                f"{_e(_secs(attempt.first_token))}</title></path>"
            )
        if attempt.hung_up is not None:
            hx = self.x(attempt.hung_up)
            parts.append(
                f'<line class="hang-mark" x1="{hx}" y1="{bar_y - 5}" x2="{hx}" '
                f'y2="{bar_y + _BAR + 5}"/>'
            )
        parts += self._gap(attempt, previous, start_x, mid, bar_y)
        return parts

    def _gap(
        self,
        attempt: Attempt,
        previous: Attempt | None,
        start_x: float,
        mid: float,
        bar_y: float,
    ) -> list[str]:
        """The wait between the previous call's end and this one, when the previous call had
        ended: that is the app's backoff, drawn as a bracket and labelled."""
        if previous is None or attempt.gap is None:
            return []
        previous_end = previous.ended if previous.hung_up is None else previous.hung_up
        if previous_end is None or previous_end > attempt.at:
            return []
        from_x = self.x(previous_end)
        if start_x - from_x < 4:
            return []
        self.kinds.add("gap")
        label = f"waited {_secs(attempt.at - previous_end)}"
        text_width = len(label) * _CHAR * 0.92
        centre = (from_x + start_x) / 2
        centre = min(max(centre, _PLOT_LEFT + text_width / 2), _PLOT_RIGHT - text_width / 2)
        text = (
            f'<text class="gap-label" x="{centre:.1f}" y="{bar_y - 3}" '
            f'text-anchor="middle">{_e(label)}</text>'
        )
        return [
            f'<path class="gap" d="M{from_x} {mid - 4}v8M{from_x} {mid}H{start_x}M{start_x} '
            f'{mid - 4}v8"><title>{_e(label)} after call #{previous.number} ended '
            f"({_e(_secs(attempt.gap))} after it was received)</title></path>",
            text,
        ]

    def _user_left(self) -> list[str]:
        if self.evidence.user_left:
            self.kinds.add("left")
        return self._moments(self.evidence.user_left, "left", "user left", label_y=17)

    def _hang_ups(self) -> list[str]:
        return self._moments(self.hung_ups, "hang", "app hung up", label_y=self.rows_end + 36)

    def _moments(self, moments: list[float], kind: str, what: str, label_y: float) -> list[str]:
        """A vertical line across the rows at each of `moments`, labelled where there is room
        (in two lanes, from `label_y` down)."""
        lanes = _Lanes(2)
        parts = []
        for moment in moments:
            x = self.x(moment)
            label = f"{what} {_secs(moment)}"
            parts.append(
                f'<line class="{kind}-line" x1="{x}" y1="{self.top - 2}" x2="{x}" '
                f'y2="{self.rows_end + 4}"><title>{_e(label)}</title></line>'
            )
            placed = lanes.place(x, len(label) * _CHAR)
            if placed:
                lane, start = placed
                y = label_y + _LANE * lane
                parts.append(f'<text class="{kind}-label" x="{start:.1f}" y="{y}">{_e(label)}</text>')
        return parts


def _axis(evidence: Evidence, duration: float) -> tuple[float, float]:
    """Where the time axis starts and ends. It ends a little after the last thing that
    happened, or at the end of the scenario when a call was still open then. It starts at 0,
    unless everything happened in a span after a long quiet time (from 1 s on, and less than
    half as long as the wait before it): then it starts just before, so that the calls are not
    squeezed into the right of an empty chart. A span shorter than a tenth of the time since 0
    is not magnified: a single short call would fill the chart and look long."""
    moments = list(evidence.user_left)
    still_open = False
    for attempt in evidence.attempts[:MAX_ROWS]:
        moments.append(attempt.at)
        later = (attempt.first_token, attempt.ended, attempt.hung_up)
        moments += [moment for moment in later if moment is not None]
        still_open = still_open or (attempt.ended is None and attempt.hung_up is None)
    last = max(moments, default=0.0)
    if still_open and duration > last:
        last = duration
    first = min(moments, default=0.0)
    span = last - first
    if first >= 1.0 and first > 2 * span and span >= last / 10:
        step = _nice_step(span / 6)
        start = math.floor((first - span * 0.06) / step) * step
        return start, last + span * 0.04
    return 0.0, max(last * 1.04, 0.01)


def _nice_step(raw: float) -> float:
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _row_title(attempt: Attempt) -> str:
    return f"#{attempt.number} {attempt.model} · {_result(attempt)} · {attempt.tokens} tok"


def _row_detail(attempt: Attempt) -> str:
    return f"{'stream' if attempt.stream else 'json'} · fault: {attempt.fault}"


def _result(attempt: Attempt) -> str:
    """``503 error reply`` rather than the ledger's ``503 completed``: the provider completed
    sending an error, which is not what a reader takes "completed" to mean."""
    if attempt.status is None:
        return f"no status, {attempt.outcome}"
    if attempt.outcome == "completed" and attempt.status >= 400:
        return f"{attempt.status} error reply"
    return f"{attempt.status} {attempt.outcome}"


def _attempt_tip(attempt: Attempt) -> str:
    """Everything about the attempt, for the hover text."""
    lines = [
        f"call #{attempt.number}: {attempt.model} ({'stream' if attempt.stream else 'json'})",
        f"fault: {attempt.fault}",
        f"result: {_result(attempt)}, {attempt.tokens} tokens",
        f"received at {_secs(attempt.at)}",
    ]
    if attempt.gap is not None:
        lines.append(f"{_secs(attempt.gap)} after the previous call was received")
    if attempt.first_token is not None:
        lines.append(f"first token at {_secs(attempt.first_token)}")
    if attempt.ended is not None:
        lines.append(f"ended at {_secs(attempt.ended)}")
    if attempt.hung_up is not None:
        lines.append(f"the app hung up at {_secs(attempt.hung_up)}")
    return "\n".join(lines)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_CSS = """
:root {
  --bg: #ffffff; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --card: #f6f8fa;
  --stripe: #f3f5f7; --ok: #009E73; --failed: #D55E00; --hung: #0072B2; --other: #8c959f;
  --warn: #E69F00; --left: #CC79A7; --purple: #7d4e9e; --token: #1b1f24; --accent: #0072B2;
  --badge-fg: #ffffff;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --line: #30363d; --card: #161b22;
    --stripe: #12171e; --ok: #2fbf8f; --failed: #f07b3f; --hung: #56B4E9; --other: #8b949e;
    --warn: #E69F00; --left: #e38fc6; --purple: #b48ad6; --token: #ffffff; --accent: #56B4E9;
    --badge-fg: #0d1117;
  }
}
* { box-sizing: border-box; }
html { background: var(--bg); color: var(--fg); }
body {
  margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
  Arial, sans-serif; -webkit-text-size-adjust: 100%;
}
main { max-width: 1040px; margin: 0 auto; padding: 32px 24px 48px; }
h1, h2, h3 { line-height: 1.25; margin: 0; }
h2 { font-size: 20px; margin: 36px 0 12px; padding-bottom: 6px;
  border-bottom: 1px solid var(--line); }
a { color: var(--accent); }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono",
  monospace; }
.eyebrow { margin: 0; text-transform: uppercase; letter-spacing: .08em; font-size: 12px;
  color: var(--muted); }
.submission { font-size: 26px; margin: 4px 0 8px; overflow-wrap: anywhere; }
.digest { margin: -4px 0 10px; font-size: 12px; color: var(--muted); overflow-wrap: anywhere; }
.total { margin: 0 0 8px; display: flex; align-items: baseline; gap: 10px; flex-wrap: wrap; }
.total .big { font-size: 44px; font-weight: 700; font-variant-numeric: tabular-nums; }
.total .of { font-size: 20px; color: var(--muted); }
.total .pct { font-size: 20px; font-weight: 600; padding: 0 10px; border-radius: 999px;
  background: var(--card); border: 1px solid var(--line); }
.bonus-total { font-size: 15px; color: var(--ok); font-weight: 600; }
.meter { height: 8px; border-radius: 4px; background: var(--stripe); border: 1px solid var(--line);
  overflow: hidden; min-width: 80px; }
.meter > div { height: 100%; background: var(--ok); }
.meter.wide { height: 10px; max-width: 560px; margin-bottom: 16px; }
.facts { display: flex; flex-wrap: wrap; gap: 8px 28px; margin: 0; }
.fact dt { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .05em; }
.fact dd { margin: 0; font-weight: 600; font-variant-numeric: tabular-nums; }
.fact.warn dd { color: var(--failed); }
.banner { border-left: 4px solid var(--failed); background: var(--card); padding: 10px 14px;
  font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); }
thead th { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .05em; }
tfoot th, tfoot td { font-weight: 700; border-bottom: none; }
td.num, th.num { text-align: right; white-space: nowrap; }
td .meter { width: 100%; }
.guide p { margin: 0 0 6px; color: var(--muted); }
.task-points { font-weight: 500; font-size: 15px; color: var(--muted); margin-left: 8px; }
.scenario { border: 1px solid var(--line); border-left: 5px solid var(--other); border-radius: 8px;
  padding: 14px 18px; margin: 0 0 14px; background: var(--bg); break-inside: avoid; }
.scenario.passed { border-left-color: var(--ok); }
.scenario.failed { border-left-color: var(--failed); }
.scenario.timed-out { border-left-color: var(--warn); }
.scenario.no-start { border-left-color: var(--purple); }
.scenario.crashed { border-left-color: var(--left); }
.scenario-head { display: flex; align-items: center; gap: 10px; flex-wrap: wrap; }
.scenario-head h3 { font-size: 16px; flex: 1 1 320px; }
.worth { font-weight: 600; font-variant-numeric: tabular-nums; white-space: nowrap; }
.badge { display: inline-block; font-size: 12px; font-weight: 700; padding: 2px 9px;
  border-radius: 999px; white-space: nowrap; color: var(--badge-fg); background: var(--other); }
.badge.passed { background: var(--ok); }
.badge.failed { background: var(--failed); }
.badge.timed-out { background: var(--warn); color: #1b1f24; }
.badge.no-start { background: var(--purple); }
.badge.harness { background: var(--other); }
.badge.crashed { background: var(--left); color: #1b1f24; }
.badge.not-run { background: transparent; color: var(--fg); border: 1px solid var(--muted); }
.badge.other { background: transparent; color: var(--fg); border: 1px dashed var(--muted); }
.chip { font-size: 11px; font-weight: 600; text-transform: uppercase; letter-spacing: .05em;
  padding: 1px 7px; border-radius: 4px; border: 1px solid var(--line); color: var(--muted); }
.chip.hidden { border-style: dashed; }
.why, .hint { display: grid; grid-template-columns: 56px 1fr; gap: 10px; margin-top: 10px; }
.label { font-size: 12px; font-weight: 700; color: var(--muted); text-transform: uppercase;
  letter-spacing: .05em; padding-top: 2px; }
.why pre { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; font-size: 13px;
  background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
.why p, .hint p { margin: 0; }
.hint p { color: var(--muted); }
.note { color: var(--muted); font-style: italic; margin: 10px 0 0; }
figure.timeline { margin: 14px 0 0; overflow-x: auto; }
.tasks { overflow-x: auto; }
@media screen { svg.chart { min-width: 720px; } }  /* scroll rather than shrink the labels */
figcaption { font-size: 13px; color: var(--muted); margin-bottom: 4px; }
.wasted-callout { color: var(--failed); }
svg.chart { display: block; width: 100%; height: auto; font-family: system-ui, -apple-system,
  "Segoe UI", Roboto, Arial, sans-serif; font-size: 11px; }
.chart text { fill: var(--fg); }
.chart .row-title { font-weight: 600; font-variant-numeric: tabular-nums; }
.chart .row-sub, .chart .tick, .chart .axis-title { fill: var(--muted); }
.chart .stripe { fill: var(--stripe); }
.chart .grid { stroke: var(--line); stroke-width: 1; }
.chart .axis { stroke: var(--muted); stroke-width: 1; }
.chart .axis-break { stroke: var(--muted); stroke-width: 1.5; fill: none; }
.chart .bar.ok { fill: var(--ok); }
.chart .bar.failed { fill: var(--failed); }
.chart .bar.hung { fill: var(--hung); }
.chart .bar.other { fill: var(--other); }
.chart .bar.open { fill: var(--other); fill-opacity: .35; stroke: var(--other);
  stroke-dasharray: 4 3; }
.chart .hatch-line { fill: var(--bg); fill-opacity: .75; }
.chart .token { fill: var(--token); stroke: var(--bg); stroke-width: 1.5; }
.chart .hang-mark { stroke: var(--hung); stroke-width: 3; }
.chart .hang-line { stroke: var(--hung); stroke-width: 1; stroke-dasharray: 1 3; }
.chart .hang-label { fill: var(--hung); font-weight: 600; }
.chart .left-line { stroke: var(--left); stroke-width: 2; stroke-dasharray: 5 3; }
.chart .left-label { fill: var(--left); font-weight: 700; }
.chart .gap { stroke: var(--fg); stroke-width: 1.2; fill: none; }
.chart .gap-label { font-size: 10px; font-weight: 600; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 12px; color: var(--muted);
  margin: 6px 0 0; }
.key { display: inline-flex; align-items: center; gap: 5px; }
.sw { display: inline-block; width: 18px; height: 10px; border-radius: 2px; }
.sw.ok { background: var(--ok); }
.sw.failed { background: var(--failed); }
.sw.hung { background: var(--hung); }
.sw.other { background: var(--other); }
.sw.open { background: transparent; border: 1px dashed var(--other); }
.sw.token { width: 9px; height: 9px; background: var(--token); transform: rotate(45deg);
  border-radius: 0; }
.sw.gap { height: 8px; border: 1.5px solid var(--fg); border-top: none; border-bottom: none;
  background: linear-gradient(var(--fg), var(--fg)) center / 100% 1.5px no-repeat;
  border-radius: 0; }
.sw.left { width: 0; height: 14px; border-left: 2px dashed var(--left); border-radius: 0; }
.sw.wasted { background: repeating-linear-gradient(45deg, var(--other) 0 3px, var(--bg) 3px 5px); }
footer { margin-top: 40px; font-size: 12px; color: var(--muted); border-top: 1px solid var(--line);
  padding-top: 10px; }
@media print {
  :root { --bg: #ffffff; --fg: #000000; --muted: #444c56; --line: #c8ced5; --card: #f6f8fa;
    --stripe: #f4f6f8; --token: #000000; --badge-fg: #ffffff; }
  main { max-width: none; padding: 0; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { break-after: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""
