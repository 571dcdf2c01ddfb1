"""The HTML report: one self-contained page, every scenario with its status, text escaped, and
the evidence drawn as a timeline with a bar per call. Structure and content, not pixels."""

from __future__ import annotations

import enum
import re
import typing
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from grades import attempt, new_grade
from grades import result as scenario_result  # `result` names the loop variables here

from harness.grading.evidence import Evidence
from harness.grading.html_report import MAX_ROWS, grade_html, write_html
from harness.grading.results import Grade, Status

STARTED_AT = 1_700_000_000.0  # 2023-11-14T22:13:20Z
XSS = "<script>alert(1)</script>"


# A small DOM, enough to ask the page questions


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    text: str = ""

    def all(self, tag: str, cls: str | None = None) -> list[Node]:
        found = []
        for child in self.children:
            if child.tag == tag and (cls is None or cls in child.classes):
                found.append(child)
            found += child.all(tag, cls)
        return found

    def every_node(self) -> list[Node]:
        return [self] + [node for child in self.children for node in child.every_node()]

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    @property
    def content(self) -> str:
        """All the text inside, as a browser would show it (entities decoded)."""
        return self.text + "".join(child.content for child in self.children)


class Page(HTMLParser):
    """Parses the page into `Node`s and records every tag that was closed out of order."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]
        self.mismatched: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if self.stack[-1].tag != tag:
            self.mismatched.append(f"</{tag}> closes <{self.stack[-1].tag}>")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(Node("#text", {}, text=data))

    def scenario(self, scenario_id: str) -> Node:
        (article,) = [
            node
            for node in self.root.all("article")
            if node.attrs.get("id", "").startswith(f"scenario-{scenario_id}-")
        ]
        return article


# Grades


def backoff_evidence() -> Evidence:
    """A 503, a wait, a 429, a wait, a stream the app hung up on after the user left, and a
    fallback that ran on after that."""
    return Evidence(
        attempts=[
            attempt(1, fault="error 503", status=503, at=0.03, ended=0.034),
            attempt(2, fault="error 429", status=429, at=0.245, gap=0.215, ended=0.247),
            attempt(
                3,
                fault="stall after 4 tokens",
                outcome="disconnected",
                at=0.56,
                gap=0.315,
                first_token=0.62,
                ended=1.41,
                hung_up=1.408,
                tokens=4,
            ),
            attempt(
                4, model="fake-small", at=1.42, gap=0.86, first_token=1.48, ended=2.3, tokens=38
            ),
        ],
        user_left=[1.1],
        tokens_billed=42,
        tokens_unread=30,
    )


def sample_grade() -> Grade:
    grade = new_grade()
    answered = Evidence(
        attempts=[attempt(1, at=0.02, first_token=0.05, ended=0.3, tokens=12)],
        tokens_billed=12,
    )
    for made in [
        scenario_result("streams_tokens", Status.PASSED, task="streaming", evidence=answered),
        scenario_result(
            "backoff_waits",
            Status.FAILED,
            points=3,
            reason="the app ran on for 1.2 s after the user left",
            evidence=backoff_evidence(),
        ),
        scenario_result(
            "hung_model",
            Status.TIMED_OUT,
            reason="stopped after 10 s",
            evidence=Evidence(attempts=[attempt(1, fault="hang", status=None, at=0.02)]),
        ),
        scenario_result(
            "falls_back",
            Status.APP_DID_NOT_START,
            task="fallback",
            reason="the app exited with code 1: ImportError",
        ),
        scenario_result("fixture_broke", Status.HARNESS_ERROR, reason="KeyError: 'x'"),
        scenario_result("breaker", Status.FAILED, task="fallback", hidden=True, reason="none"),
        scenario_result("fallback_bonus", Status.PASSED, task="fallback", points=1, bonus=True),
    ]:
        grade.add(made)
    return grade


def parse(grade: Grade, **options: typing.Any) -> tuple[str, Page]:
    text = grade_html(grade, **options)
    return text, Page(text)


# The page


def test_the_page_is_well_formed() -> None:
    text, page = parse(sample_grade(), started_at=STARTED_AT)
    assert text.startswith("<!DOCTYPE html>")
    assert page.mismatched == []
    assert page.stack == [page.root]  # every element was closed
    (html_node,) = page.root.all("html")
    assert [child.tag for child in html_node.children if child.tag != "#text"] == ["head", "body"]
    assert page.root.all("meta")[0].attrs == {"charset": "utf-8"}


def test_the_page_is_self_contained() -> None:
    text, page = parse(sample_grade(), started_at=STARTED_AT)
    nodes = page.root.every_node()
    for forbidden in ("script", "link", "img", "iframe", "object", "embed", "base"):
        assert not page.root.all(forbidden), f"the page has a <{forbidden}>"
    assert not [node.tag for node in nodes if "src" in node.attrs]
    hrefs = [node.attrs["href"] for node in nodes if "href" in node.attrs]
    assert hrefs and all(href.startswith("#") for href in hrefs)  # links within the page only
    ids = {node.attrs["id"] for node in nodes if "id" in node.attrs}
    assert {href[1:] for href in hrefs} <= ids
    assert not re.search(r"https?:|//[a-z]|@import|@font-face", text, re.IGNORECASE)


def test_the_header_has_the_totals_and_the_run() -> None:
    grade = sample_grade()
    _, page = parse(grade, started_at=STARTED_AT)
    (header,) = page.root.all("header")
    words = " ".join(header.content.split())
    assert grade.submission in words
    assert (grade.earned, grade.possible) == (2, 11)  # no bonus, no harness error
    assert "2 / 11 points" in words and "18%" in words and "+1 bonus" in words
    facts = {
        node.all("dt")[0].content: node.all("dd")[0].content for node in header.all("div", "fact")
    }
    assert facts == {
        "started": "2023-11-14 22:13:20 UTC",
        "seed": "7",
        "app mode": "subprocess",
        "isolation": "none",
        "duration": "12.3 s",
        "tokens billed": "54",
        "read by nobody": "30",
    }
    _, without = parse(grade)
    assert "started" not in without.root.all("header")[0].content


def test_the_task_table_has_a_row_per_task_with_its_points_and_bonus() -> None:
    _, page = parse(sample_grade())
    (table,) = page.root.all("table")
    rows = [
        " ".join(cell.content.strip() for cell in row.children if cell.content.strip())
        for row in table.all("tr")
    ]
    assert rows == [
        "Task Points Bonus Scenarios passed",
        "Streaming 2 / 2 1 of 1",
        "Retries 0 / 5 0 of 3",
        "Fallback 0 / 4 +1 / 1 1 of 3",
        "Total 2 / 11 +1 / 1 2 of 7",
    ]


def test_every_scenario_appears_with_its_status_points_and_marks() -> None:
    grade = sample_grade()
    _, page = parse(grade)
    for result in grade.results:
        card = page.scenario(result.scenario.id)
        (badge,) = card.all("span", "badge")
        assert badge.content.strip().endswith(result.status.value)
        assert result.scenario.title in card.all("h3")[0].content
        chips = [chip.content for chip in card.all("span", "chip")]
        assert ("hidden" in chips) == result.scenario.hidden
        assert ("bonus" in chips) == result.scenario.bonus
        worth = card.all("span", "worth")[0].content
        if result.status is Status.HARNESS_ERROR:
            assert worth == "not counted"
        else:
            assert worth.startswith(f"{result.earned} / {result.scenario.points} pt")
        if result.reason:
            assert card.all("pre")[0].content == result.reason
        hint = [node.all("p")[0].content for node in card.all("div", "hint")]
        if result.status is Status.PASSED:
            assert hint == []
        elif result.status is Status.HARNESS_ERROR:
            assert hint == ["A bug in the grader, not in the app: it costs no points."]
        else:
            assert hint == [result.scenario.hint]


def test_each_status_has_its_own_look() -> None:
    """A status added without a look of its own still renders (see the next test), plainly:
    this test is the reminder to give it one."""
    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="thread")
    for status in Status:
        grade.add(scenario_result(status.name.lower(), status, reason="why"))
    _, page = parse(grade)
    badges = {s: page.scenario(s.name.lower()).all("span", "badge")[0] for s in Status}
    looks = {status: badge.classes[1] for status, badge in badges.items()}
    assert len(set(looks.values())) == len(Status)  # told apart by colour and sign
    assert "other" not in looks.values()
    signs = {badge.all("span")[0].content for badge in badges.values()}
    assert len(signs) == len(Status)  # not by colour alone


def test_an_unknown_status_renders_plainly() -> None:
    class Later(enum.StrEnum):  # a status a later version may add
        FLAKY = "flaky <maybe>"

    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="thread")
    grade.add(scenario_result("flakes", typing.cast(Status, Later.FLAKY), reason="it varies"))
    text, page = parse(grade)
    card = page.scenario("flakes")
    (badge,) = card.all("span", "badge")
    assert badge.classes == ["badge", "other"]
    assert badge.content.strip().endswith("flaky <maybe>")
    assert "flaky &lt;maybe&gt;" in text
    assert card.all("div", "hint")[0].all("p")[0].content == "Hint for flakes."
    assert card.all("span", "worth")[0].content == "0 / 2 pts"


def test_the_files_graded_are_named_when_known() -> None:
    grade = sample_grade()
    grade.digest, grade.files = "sha256:" + "ab" * 32, 12
    _, page = parse(grade)
    (digest,) = page.root.all("p", "digest")
    assert digest.content == f"12 files · {grade.digest}"
    _, without = parse(sample_grade())
    assert not without.root.all("p", "digest")


def test_text_from_the_grade_is_escaped() -> None:
    evidence = Evidence(attempts=[attempt(1, model=XSS, fault=XSS, at=0.1, ended=0.2)])
    grade = Grade(submission=XSS, tasks=("retries",), seed=0, app_mode=XSS)
    grade.add(
        scenario_result(
            "xss", Status.FAILED, reason=XSS, title=XSS, hint=XSS, evidence=evidence
        )
    )
    text, page = parse(grade)
    assert "<script" not in text.lower()
    assert not page.root.all("script")
    assert page.mismatched == []
    assert text.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 7  # each place it was put
    card = page.scenario("xss")
    assert card.all("pre")[0].content == XSS  # shown as text, as it was
    assert XSS in page.root.all("h1")[0].content


def test_quotes_in_the_grade_do_not_break_out_of_attributes() -> None:
    sneaky = 'x" onmouseover="alert(1)'
    evidence = Evidence(attempts=[attempt(1, model=sneaky, at=0.1, ended=0.2)])
    grade = Grade(submission=sneaky, tasks=("retries",), seed=0, app_mode="thread")
    grade.add(scenario_result(sneaky, Status.FAILED, reason=sneaky, evidence=evidence))
    _, page = parse(grade)
    handlers = [
        name for node in page.root.every_node() for name in node.attrs if name.startswith("on")
    ]
    assert handlers == []


# The pictures


def chart(page: Page, scenario_id: str) -> Node:
    (svg,) = page.scenario(scenario_id).all("svg")
    return svg


def test_a_scenario_with_calls_has_a_picture_with_a_bar_per_call() -> None:
    grade = sample_grade()
    _, page = parse(grade)
    for result in grade.results:
        pictures = page.scenario(result.scenario.id).all("svg")
        if result.evidence.attempts:
            (svg,) = pictures
            bars = svg.all("rect", "bar")
            assert [bar.attrs["data-attempt"] for bar in bars] == [
                str(a.number) for a in result.evidence.attempts
            ]
            assert svg.attrs["role"] == "img"
        else:
            assert pictures == []
            assert "No calls to the provider." in page.scenario(result.scenario.id).content


def test_bars_are_coloured_by_what_became_of_the_call() -> None:
    _, page = parse(sample_grade())
    bars = chart(page, "backoff_waits").all("rect", "bar")
    assert [bar.classes[1] for bar in bars] == ["failed", "failed", "hung", "ok"]
    (open_bar,) = chart(page, "hung_model").all("rect", "bar")
    assert open_bar.classes[1] == "open"
    broken = Evidence(
        attempts=[
            attempt(1, fault="reset", status=None, outcome="reset", at=0.1, ended=0.11),
            attempt(2, fault="cut", outcome="cut", at=0.2, ended=0.25, tokens=3),
            attempt(3, fault="odd", outcome="wandered off", at=0.3, ended=0.4),
        ]
    )
    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="thread")
    grade.add(scenario_result("broken", Status.FAILED, evidence=broken))
    _, page = parse(grade)
    bars = chart(page, "broken").all("rect", "bar")
    assert [bar.classes[1] for bar in bars] == ["failed", "failed", "other"]
    assert "other outcome" in page.scenario("broken").all("p", "legend")[0].content


def test_bars_run_from_when_the_call_came_to_when_it_ended() -> None:
    _, page = parse(sample_grade())
    bars = chart(page, "backoff_waits").all("rect", "bar")
    starts = [float(bar.attrs["x"]) for bar in bars]
    ends = [float(bar.attrs["x"]) + float(bar.attrs["width"]) for bar in bars]
    assert starts == sorted(starts) and starts[0] < starts[1] < starts[2] < starts[3]
    assert ends[2] < starts[3]  # the app hung up on #3 before it called the fallback
    (open_bar,) = chart(page, "hung_model").all("rect", "bar")
    (axis,) = chart(page, "hung_model").all("line", "axis")
    opened = float(open_bar.attrs["x"]) + float(open_bar.attrs["width"])
    assert opened == float(axis.attrs["x2"])  # still open: it runs to the end of the axis


def test_the_picture_marks_first_tokens_waits_leaving_and_hanging_up() -> None:
    _, page = parse(sample_grade())
    svg = chart(page, "backoff_waits")
    assert len(svg.all("path", "token")) == 2  # calls 3 and 4 sent tokens
    labels = [node.content for node in svg.all("text", "gap-label")]
    assert labels == ["waited 0.211 s", "waited 0.313 s"]  # #4 followed #3 at once
    assert len(svg.all("path", "gap")) == 2
    assert len(svg.all("line", "left-line")) == 1
    assert [node.content for node in svg.all("text", "left-label")] == ["user left 1.1 s"]
    assert len(svg.all("line", "hang-line")) == 1
    assert [node.content for node in svg.all("text", "hang-label")] == ["app hung up 1.41 s"]
    assert len(svg.all("rect", "wasted")) == 2  # #3 and #4 ran on after the user left


def test_tokens_nobody_read_are_called_out() -> None:
    _, page = parse(sample_grade())
    figure = page.scenario("backoff_waits").all("figure")[0]
    (callout,) = figure.all("strong", "wasted-callout")
    assert callout.content == "30 read by nobody"
    assert "42 tokens billed" in figure.all("figcaption")[0].content
    calm = page.scenario("streams_tokens").all("figure")[0]
    assert not calm.all("strong", "wasted-callout")
    assert "none wasted" in calm.content


def test_each_picture_has_a_legend_of_what_it_shows() -> None:
    _, page = parse(sample_grade())
    legend = page.scenario("backoff_waits").all("p", "legend")[0].content
    for shown in ("answered", "error reply", "the app hung up", "first token", "a user left"):
        assert shown in legend
    assert "still open" not in legend
    plain = page.scenario("streams_tokens").all("p", "legend")[0].content
    assert "a user left" not in plain and "answered" in plain


def test_the_axis_counts_seconds_since_the_app_was_ready() -> None:
    _, page = parse(sample_grade())
    svg = chart(page, "backoff_waits")
    ticks = [float(node.content) for node in svg.all("text", "tick")]
    assert ticks[0] == 0.0 and ticks == sorted(ticks)
    assert ticks[-1] <= 2.3 * 1.04
    assert "seconds since the app was ready" in svg.content


def test_a_late_burst_of_calls_is_not_squeezed_into_the_edge() -> None:
    late = Evidence(
        attempts=[
            attempt(n, fault="error 503", status=503, at=5 + n * 0.2, ended=5.05 + n * 0.2)
            for n in range(1, 6)
        ]
    )
    short = Evidence(attempts=[attempt(1, fault="error 503", status=503, at=5.0, ended=5.001)])
    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="thread")
    grade.add(scenario_result("late", Status.FAILED, evidence=late))
    grade.add(scenario_result("short", Status.FAILED, evidence=short))
    _, page = parse(grade)
    late_ticks = [float(node.content) for node in chart(page, "late").all("text", "tick")]
    assert 5.0 <= late_ticks[0] < 5.2
    assert chart(page, "late").all("path", "axis-break")
    short_ticks = [float(node.content) for node in chart(page, "short").all("text", "tick")]
    assert short_ticks[0] == 0.0  # one short call is not blown up to fill the picture
    assert not chart(page, "short").all("path", "axis-break")


def test_a_user_who_left_with_no_call_made_is_still_told() -> None:
    grade = Grade(submission="x", tasks=("cancellation",), seed=0, app_mode="thread")
    grade.add(
        scenario_result(
            "left_early", Status.FAILED, task="cancellation", evidence=Evidence(user_left=[0.036])
        )
    )
    _, page = parse(grade)
    card = page.scenario("left_early")
    assert not card.all("svg")
    assert "No calls to the provider. A user left at 0.036 s." in card.content


def test_very_many_calls_are_drawn_up_to_a_limit() -> None:
    many = Evidence(
        attempts=[
            attempt(n, fault="error 503", status=503, at=n * 0.01, ended=n * 0.01 + 0.005)
            for n in range(1, MAX_ROWS + 6)
        ]
    )
    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="thread")
    grade.add(scenario_result("storm", Status.FAILED, evidence=many))
    _, page = parse(grade)
    assert len(chart(page, "storm").all("rect", "bar")) == MAX_ROWS
    assert "5 more calls are not drawn" in page.scenario("storm").content
    assert f"{MAX_ROWS + 5} calls to the provider" in page.scenario("storm").content


def test_pictures_use_their_own_pattern_ids() -> None:
    text, page = parse(sample_grade())
    ids = [node.attrs["id"] for node in page.root.every_node() if "id" in node.attrs]
    assert len(ids) == len(set(ids))
    for fill in re.findall(r'fill="url\(#([^)]+)\)"', text):
        assert fill in ids


def test_an_ungradable_or_incomplete_grade_says_so() -> None:
    grade = Grade(submission="x", tasks=("retries",), seed=0, app_mode="subprocess")
    grade.add(scenario_result("a", Status.APP_DID_NOT_START, reason="exit 1"))
    _, page = parse(grade)
    (banner,) = page.root.all("p", "banner")
    assert "could not be graded" in banner.content
    grade.add(scenario_result("b", Status.NOT_RUN, reason="the run's time limit passed"))
    _, page = parse(grade)
    (banner,) = page.root.all("p", "banner")
    assert "stopped before every scenario ran" in banner.content
    _, page = parse(sample_grade())
    assert not page.root.all("p", "banner")


def test_an_empty_grade_still_makes_a_page() -> None:
    _, page = parse(Grade(submission="empty", tasks=(), seed=0, app_mode="thread"))
    assert page.mismatched == []
    assert "0 / 0 points" in " ".join(page.root.all("header")[0].content.split())
    assert not page.root.all("article")


def test_write_html_creates_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "deep" / "grade.html"
    write_html(path, sample_grade(), started_at=STARTED_AT)
    assert path.read_text(encoding="utf-8") == grade_html(sample_grade(), started_at=STARTED_AT)
    write_html(str(path), sample_grade())  # a str path too, replacing the file
    assert "2023-11-14" not in path.read_text(encoding="utf-8")
