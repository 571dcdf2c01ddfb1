"""`faultfirst play`'s wrapper around an app: a report for each client that leaves before its
response ended, and nothing else changed for the app. Served by uvicorn on loopback, driven by a
real client."""

from __future__ import annotations

import asyncio
import math
import queue
import typing

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from harness.hosting.departures import Departure, watch_departures
from harness.hosting.server import ServerThread

WAIT = 10.0  # seconds to wait for what must come: far more than it takes


class Served:
    """An app wrapped by `watch_departures`, served on loopback; its reports in a queue."""

    def __init__(self) -> None:
        self.reports: queue.Queue[Departure] = queue.Queue()
        self.noticed: queue.Queue[str] = queue.Queue()  # what the app itself learnt
        self.server = ServerThread(watch_departures(self._app(), self.reports.put), lifespan="off")

    def _app(self) -> Starlette:
        async def echo(request: Request) -> Response:
            return JSONResponse({"got": (await request.body()).decode()})

        async def stream(request: Request) -> Response:
            async def pieces() -> typing.AsyncIterator[str]:
                for n in range(1000):
                    yield f"data: {n}\n\n"
                    await asyncio.sleep(0.01)

            return StreamingResponse(pieces(), media_type="text/event-stream")

        async def thinks(request: Request) -> Response:
            await request.body()
            await asyncio.sleep(60)  # an app awaiting a slow model, deaf to its client
            return JSONResponse({})

        async def listens(request: Request) -> Response:
            await request.body()
            while not await request.is_disconnected():
                await asyncio.sleep(0.01)
            self.noticed.put("the client left")
            return Response(status_code=499)

        return Starlette(
            routes=[
                Route("/echo", echo, methods=["POST"]),
                Route("/stream", stream),
                Route("/thinks", thinks, methods=["POST"]),
                Route("/listens", listens, methods=["POST"]),
            ]
        )


@pytest.fixture
def served() -> typing.Iterator[Served]:
    served = Served()
    with served.server:
        yield served


def test_a_client_leaving_mid_stream_is_reported_with_the_status_already_sent(served: Served) -> None:
    with httpx.Client(base_url=served.server.url, timeout=WAIT) as client:
        with client.stream("GET", "/stream") as response:
            next(response.iter_lines())  # then leave: the block closes the connection
    report = served.reports.get(timeout=WAIT)
    assert (report.method, report.path, report.status) == ("GET", "/stream", 200)
    assert report.after >= 0 and math.isfinite(report.at)


def test_a_client_leaving_an_app_that_never_listens_is_reported_before_any_response(
    served: Served,
) -> None:
    with pytest.raises(httpx.ReadTimeout):  # a client that gives up: the user closed the tab
        httpx.post(f"{served.server.url}/thinks", content=b"a question", timeout=0.3)
    report = served.reports.get(timeout=WAIT)
    assert (report.method, report.path, report.status) == ("POST", "/thinks", None)


def test_an_app_listening_for_the_disconnect_still_hears_it(served: Served) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{served.server.url}/listens", content=b"a question", timeout=0.3)
    assert served.noticed.get(timeout=WAIT) == "the client left"
    assert served.reports.get(timeout=WAIT).path == "/listens"


def test_a_complete_exchange_reaches_the_app_whole_and_is_not_reported(served: Served) -> None:
    body = "x" * 200_000  # more than one read of the server's: the app gets every piece in order
    with httpx.Client(base_url=served.server.url, timeout=WAIT) as client:
        for _ in range(3):  # one connection, kept alive between the requests
            assert client.post("/echo", content=body).json() == {"got": body}
        with client.stream("GET", "/stream") as response:
            assert response.status_code == 200
    # The stream's departure proves the reports flow; none came before it for the echoes.
    assert served.reports.get(timeout=WAIT).path == "/stream"
    assert served.reports.empty()


NOT_REPORTS = [
    b"",
    b"not json\n",
    b"[1, 2]\n",
    b'{"method": "GET"}\n',
    b'{"method": "GET", "path": "/", "at": "NaN", "after": 1, "status": null}\n',
]


@pytest.mark.parametrize("line", NOT_REPORTS)
def test_a_report_line_that_is_not_one_is_ignored(line: bytes) -> None:
    assert Departure.from_line(line) is None


def test_a_report_reads_back_as_written() -> None:
    departure = Departure(method="POST", path="/api/answer", at=12.5, after=0.8, status=None)
    assert Departure.from_line(departure.to_line()) == departure
