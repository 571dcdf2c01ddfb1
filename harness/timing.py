"""The tolerances of the scenarios' timing assertions, and why each is what it is.

Lower bounds are tight: the fake provider is never early, and an app that waits, waits at least
that long. Upper bounds leave room for a loaded machine (a grader running several submissions on
two cores), and stay far from what a wrong app takes, so that no assertion can flip between pass
and fail on the same code. An upper bound on how long the app took counts from what the ledger
saw (the app's first call to the model, say: `checks.deadlines.Span`), not from the question
leaving the client: a loaded machine can take a good part of a second to bring it to the app. A scenario's own numbers (how long the model thinks, how long a
Retry-After asks for) are chosen against these.
"""

# Timers and clocks have sub-millisecond granularity: a lower bound gets this much slack, no more.
CLOCK_SLACK = 0.001

# An app notices a client leave within milliseconds, and the fake notices when the app hangs up in
# turn. Half a second leaves room for a loaded machine and is far below the seconds an upstream
# call in a scenario runs on when nobody cancels it.
NOTICED_LEAVING = 0.5

# How long an app may take to relay an event it has (a token, a failure), or to take in a request
# already on the wire: ~1 ms when idle, and seen near 0.45 s with five busy processes on two cores.
RELAY = 0.5

# How late, on median, the tokens of a stream may reach the user after the model wrote them. A
# correct app relays each token at once: 1-3 ms on median measured idle and with four processes
# spinning on two cores (10 ms at worst), the odd late token aside, which the median ignores. An
# app that gathers tokens into bursts of T seconds holds them T/2 on median.
STEADY = 0.1

# How much later than asked an app may start its next attempt, or answer after its deadline: its
# timers fire within milliseconds when idle.
LATE = 0.5

# The share of REQUEST_DEADLINE an app may keep in hand, giving up that much early so that its
# error reaches the user within the deadline: a defensible style, and a tenth is plenty for it.
DEADLINE_MARGIN = 0.1

# App settings for scenarios about something other than the backoff, whose retries would
# otherwise be most of their running time.
FAST_RETRIES = {"RETRY_BASE_DELAY": "0.01", "RETRY_MAX_DELAY": "0.02"}

# App settings for the circuit breaker's scenarios: it opens once a request has spent its
# MAX_ATTEMPTS (3) on a primary that is down, and its cool-down is far longer than the moments
# between two requests, even on a loaded machine, and short enough to wait out.
BREAKER = {**FAST_RETRIES, "BREAKER_FAILURES": "3", "BREAKER_COOL_DOWN": "1.0"}
