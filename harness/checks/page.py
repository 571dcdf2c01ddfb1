"""What the page scenarios check: the page, read without a browser.

A grade must not depend on whether the grading machine has a browser, nor on a browser's timing,
so the page is read, not run: ``GET /`` and every script it loads from the app, as one text. The
brief tells candidates so: the script calls the endpoints it uses by their paths
(``fetch("/api/answer/stream", ...)``) and reads the fields it shows by their names
(``data.latency_ms``). Scripts from other sites (a CDN) are not fetched: the grader reaches no
address off this machine, and the app's own code is what is graded.
"""

from __future__ import annotations

import re
import urllib.parse

from ..app_client import AppClient, excerpt

_SCRIPT_SOURCE = re.compile(r"""<script\b[^>]*\bsrc\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


async def read(client: AppClient) -> str:
    """The page's HTML and the scripts it loads from the app, joined."""
    reply = await client.request("GET", "/")
    assert reply.status == 200, (
        f"GET / answered {reply.status}, not the page: {excerpt(reply.text)}"
    )
    assert "html" in str(reply.headers.get("content-type", "")), (
        f"GET / should answer the page (text/html), not {reply.headers.get('content-type')!r}"
    )
    texts = [reply.text]
    for source in _SCRIPT_SOURCE.findall(reply.text):
        url = urllib.parse.urlsplit(urllib.parse.urljoin(client.url + "/", source))
        if f"{url.scheme}://{url.netloc}" != client.url:
            continue  # another site's script: not the app's code
        script = await client.request("GET", url.path + (f"?{url.query}" if url.query else ""))
        assert script.status == 200, (
            f"the page loads {source}, and GET {url.path} answered {script.status}"
        )
        texts.append(script.text)
    return "\n".join(texts)


def expect(page: str, what: str, *names: str) -> None:
    """The page holds every one of `names` (paths, event or field names): `what` is what they
    show it does, as a sentence's end."""
    missing = [name for name in names if not _holds(page, name)]
    assert not missing, (
        f"the page (GET / and the scripts it loads from the app) never mentions "
        f"{', '.join(repr(name) for name in missing)}: it should {what}"
    )


def expect_pattern(page: str, what: str, pattern: str) -> None:
    """The page holds a match of the regular expression `pattern` (code that does `what`)."""
    assert re.search(pattern, page) is not None, (
        f"the page (GET / and the scripts it loads from the app) has no code that does this: "
        f"it should {what}"
    )


def field(name: str) -> str:
    """A pattern for code reading the JSON field `name`: ``data.name``, ``data["name"]`` or
    ``{ name }`` (not a word of text, nor a call such as ``response.text()``)."""
    return rf"""\.{name}\b(?!\s*\()|\[\s*["']{name}["']\s*\]|\{{[^}}]*\b{name}\b[^}}]*\}}\s*="""


def _holds(page: str, name: str) -> bool:
    """`name` in the page, as a whole word when it is one (``model``, not ``models``)."""
    if re.fullmatch(r"\w+", name):
        return re.search(rf"\b{name}\b", page) is not None
    return name in page
