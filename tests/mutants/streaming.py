"""Mutants of the streaming task."""

from __future__ import annotations

from .edits import Edit, Mutant


BUFFER_THEN_STREAM = Mutant(
    "buffer_then_stream",
    "The stream endpoint collects every piece of the answer, then sends all the events at once.",
    (
        Edit(
            "streaming.py",
            "            async for event in events:\n",
            "            for event in [event async for event in events]:\n",
        ),
    ),
    breaks=("streaming.live",),
    expected_failures=frozenset(
        {
            "leaving_a_stream_midway_stops_the_model",
            "tokens_arrive_while_the_model_writes",
        }
    ),
)


NO_ERROR_EVENT = Mutant(
    "no_error_event",
    "A failure during the stream ends it silently: no `error` event, and no `done` either.",
    (
        Edit(
            "streaming.py",
            "        except AnswerError as error:\n"
            '            yield _event("error", error.to_json())\n',
            "        except AnswerError:\n            return\n",
        ),
    ),
    breaks=("streaming.error",),
    expected_failures=frozenset(
        {
            "a_failure_midway_ends_with_an_error_event",
            "a_slow_token_drip_is_cut_off_at_the_deadline",
            "a_stream_that_stalls_midway_is_cut_off_at_the_deadline",
            "a_stream_with_every_model_down_ends_with_an_error",
            "an_endless_stream_is_cut_off_at_the_deadline",
            "every_failure_is_told_in_the_error_shape",
        }
    ),
)


STRIPS_TOKENS = Mutant(
    "strips_tokens",
    "Each token's text is stripped before it is sent, losing the spaces between words.",
    (
        Edit(
            "streaming.py",
            'yield _event("token", {"text": event})',
            'yield _event("token", {"text": event.strip()})',
        ),
    ),
    breaks=("streaming.text",),
    expected_failures=frozenset(
        {
            "a_chunk_that_is_not_json_is_skipped_or_ends_the_stream",
            "a_stream_retries_failures_before_its_first_token",
            "an_answer_ended_for_its_length_is_delivered",
            "stream_is_token_events_then_done",
        }
    ),
)


# -- written from the brief (issue 12) -------------------------------------------------------------

# The SSE events, whole: the token and done events of the reference, as _encoded writes them.
_TOKENS_AND_DONE = (
    "            async for event in events:\n"
    "                if isinstance(event, Metadata):\n"
    '                    yield _event("done", {**event.to_json(), "request_id": request_id})\n'
    "                else:\n"
    '                    yield _event("token", {"text": event})\n'
)


NO_EVENT_STREAM_TYPE = Mutant(
    "stream_without_event_stream_type",
    "The StreamingResponse is made without a media_type, so the stream has no Content-Type at "
    "all instead of text/event-stream.",
    (Edit("streaming.py", '        media_type="text/event-stream",\n', ""),),
    breaks=("streaming.events",),
    expected_failures=frozenset(
        {
            "a_chunk_that_is_not_json_is_skipped_or_ends_the_stream",
            "a_failure_midway_ends_with_an_error_event",
            "a_slow_token_drip_is_cut_off_at_the_deadline",
            "a_stream_falls_back_too",
            "a_stream_that_stalls_midway_is_cut_off_at_the_deadline",
            "a_stream_with_every_model_down_ends_with_an_error",
            "an_answer_ended_for_its_length_is_delivered",
            "an_endless_stream_is_cut_off_at_the_deadline",
            "every_failure_is_told_in_the_error_shape",
            "leaving_a_stream_midway_stops_the_model",
            "no_fallback_when_the_primary_recovers",
            "nothing_is_retried_once_tokens_were_sent",
            "stream_is_token_events_then_done",
            "streams_run_side_by_side",
            "the_done_event_carries_the_metadata",
            "tokens_arrive_while_the_model_writes",
        }
    ),
    from_brief=True,
)


EVENTS_NOT_SEPARATED = Mutant(
    "events_not_separated",
    "Each event ends with one new line, not a blank line: an SSE reader sees the whole stream as "
    "one event.",
    (
        Edit(
            "streaming.py",
            'return f"event: {name}\\ndata: {json.dumps(data)}\\n\\n"',
            'return f"event: {name}\\ndata: {json.dumps(data)}\\n"',
        ),
    ),
    breaks=("streaming.events",),
    expected_failures=frozenset(
        {
            "a_chunk_that_is_not_json_is_skipped_or_ends_the_stream",
            "a_failure_midway_ends_with_an_error_event",
            "a_slow_token_drip_is_cut_off_at_the_deadline",
            "a_stream_falls_back_too",
            "a_stream_retries_failures_before_its_first_token",
            "a_stream_that_stalls_midway_is_cut_off_at_the_deadline",
            "a_stream_with_every_model_down_ends_with_an_error",
            "an_answer_ended_for_its_length_is_delivered",
            "an_endless_stream_is_cut_off_at_the_deadline",
            "leaving_a_stream_midway_stops_the_model",
            "no_fallback_when_the_primary_recovers",
            "stream_is_token_events_then_done",
            "streams_run_side_by_side",
            "the_done_event_carries_the_metadata",
            "tokens_arrive_while_the_model_writes",
        }
    ),
    from_brief=True,
)


TOKENS_AS_MESSAGES = Mutant(
    "tokens_as_unnamed_messages",
    "Tokens are sent as bare `data:` lines, as the provider sends them, so they arrive as SSE's "
    "default `message` events, not `token` ones.",
    (
        Edit(
            "streaming.py",
            '                    yield _event("token", {"text": event})\n',
            '                    yield f"data: {json.dumps({\'text\': event})}\\n\\n"\n',
        ),
    ),
    breaks=("streaming.events",),
    expected_failures=frozenset(
        {
            "a_chunk_that_is_not_json_is_skipped_or_ends_the_stream",
            "a_stream_falls_back_too",
            "a_stream_retries_failures_before_its_first_token",
            "an_answer_ended_for_its_length_is_delivered",
            "leaving_a_stream_midway_stops_the_model",
            "stream_is_token_events_then_done",
            "tokens_arrive_while_the_model_writes",
        }
    ),
    from_brief=True,
)


TOKEN_FIELD_CONTENT = Mutant(
    "token_field_named_content",
    'Each token event\'s data is {"content": ...}, the name of the provider\'s delta field, '
    'not {"text": ...}.',
    (
        Edit(
            "streaming.py",
            'yield _event("token", {"text": event})',
            'yield _event("token", {"content": event})',
        ),
    ),
    breaks=("streaming.events",),
    expected_failures=frozenset(
        {
            "a_chunk_that_is_not_json_is_skipped_or_ends_the_stream",
            "a_stream_falls_back_too",
            "a_stream_retries_failures_before_its_first_token",
            "an_answer_ended_for_its_length_is_delivered",
            "nothing_is_retried_once_tokens_were_sent",
            "stream_is_token_events_then_done",
        }
    ),
    from_brief=True,
)


TOKENS_IN_FIVES = Mutant(
    "tokens_sent_in_fives",
    "Pieces are gathered five at a time into one token event (fewer, bigger writes), so the "
    "answer appears in bursts.",
    (
        Edit(
            "streaming.py",
            _TOKENS_AND_DONE,
            "            pending: list[str] = []\n"
            "            async for event in events:\n"
            "                if isinstance(event, Metadata):\n"
            "                    if pending:\n"
            '                        yield _event("token", {"text": "".join(pending)})\n'
            '                    yield _event("done", '
            '{**event.to_json(), "request_id": request_id})\n'
            "                else:\n"
            "                    pending.append(event)\n"
            "                    if len(pending) == 5:  # fewer, bigger writes\n"
            '                        yield _event("token", {"text": "".join(pending)})\n'
            "                        pending.clear()\n",
        ),
    ),
    breaks=("streaming.live",),
    expected_failures=frozenset({"tokens_arrive_while_the_model_writes"}),
    from_brief=True,
)


TOKENS_BY_SENTENCE = Mutant(
    "tokens_sent_by_sentence",
    "Pieces are held until a sentence ends (so the page never shows half a sentence): each token "
    "event is a whole sentence, sent when its last piece comes.",
    (
        Edit(
            "streaming.py",
            _TOKENS_AND_DONE,
            '            sentence = ""\n'
            "            async for event in events:\n"
            "                if isinstance(event, Metadata):\n"
            "                    if sentence:\n"
            '                        yield _event("token", {"text": sentence})\n'
            '                    yield _event("done", '
            '{**event.to_json(), "request_id": request_id})\n'
            "                else:\n"
            "                    sentence += event\n"
            '                    if event.endswith((".", "!", "?", "\\n")):\n'
            '                        yield _event("token", {"text": sentence})\n'
            '                        sentence = ""\n',
        ),
    ),
    breaks=("streaming.live",),
    expected_failures=frozenset(
        {
            "leaving_a_stream_midway_stops_the_model",
            "tokens_arrive_while_the_model_writes",
        }
    ),
    from_brief=True,
)


TOKEN_JSON_BY_HAND = Mutant(
    "token_json_by_hand",
    "The token event's JSON is written with an f-string, unescaped: a quote, a backslash or a new "
    "line in a piece makes its data invalid JSON (or splits it across lines).",
    (
        Edit(
            "streaming.py",
            '                    yield _event("token", {"text": event})\n',
            '                    yield f\'event: token\\ndata: {{"text": "{event}"}}\\n\\n\'\n',
        ),
    ),
    breaks=("streaming.text",),
    expected_failures=frozenset({"stream_is_token_events_then_done"}),
    from_brief=True,
)


TOKENS_HTML_ESCAPED = Mutant(
    "tokens_html_escaped",
    "Each piece is HTML-escaped before it is sent (against XSS on the page): quotes, <, > and & "
    "reach the user as &quot;, &lt;, &gt; and &amp;.",
    (
        Edit("streaming.py", "import json\n", "import html\nimport json\n"),
        Edit(
            "streaming.py",
            'yield _event("token", {"text": event})',
            'yield _event("token", {"text": html.escape(event)})',
        ),
    ),
    breaks=("streaming.text",),
    expected_failures=frozenset(
        {"a_stream_retries_failures_before_its_first_token", "stream_is_token_events_then_done"}
    ),
    from_brief=True,
)


FIRST_TOKEN_LSTRIPPED = Mutant(
    "first_token_lstripped",
    "The first piece is stripped of its leading white space (models often start with a space or a "
    "new line): an answer that starts with one loses it.",
    (
        Edit(
            "answers.py",
            "            piece = first\n",
            "            piece = first.lstrip() if isinstance(first, str) else first\n",
        ),
    ),
    breaks=("streaming.text",),
    expected_failures=frozenset({"stream_is_token_events_then_done"}),
    from_brief=True,
)


NEWLINES_ESCAPED_TWICE = Mutant(
    "newlines_escaped_twice",
    "New lines are escaped by hand (a raw one would end the SSE data line), then again by "
    "json.dumps: the user reads a backslash and an n where the answer had a new line.",
    (
        Edit(
            "streaming.py",
            'yield _event("token", {"text": event})',
            'yield _event("token", {"text": event.replace("\\n", "\\\\n")})',
        ),
    ),
    breaks=("streaming.text",),
    expected_failures=frozenset({"stream_is_token_events_then_done"}),
    from_brief=True,
)


TOKENS_PRINTABLE_ONLY = Mutant(
    "tokens_printable_ascii_only",
    "Pieces are cleaned of characters outside printable ASCII (to keep the event stream safe): "
    "new lines, tabs and every non-English letter are dropped.",
    (
        Edit("streaming.py", "import json\n", "import json\nimport re\n"),
        Edit(
            "streaming.py",
            'yield _event("token", {"text": event})',
            'yield _event("token", {"text": re.sub(r"[^\\x20-\\x7e]", "", event)})',
        ),
    ),
    breaks=("streaming.text",),
    expected_failures=frozenset({"stream_is_token_events_then_done"}),
    from_brief=True,
)


DONE_AS_SENTINEL = Mutant(
    "done_as_openai_sentinel",
    "The stream ends the way the provider's does, with `[DONE]` as the done event's data: no "
    "metadata, not even the model.",
    (
        Edit(
            "streaming.py",
            '                    yield _event("done", '
            '{**event.to_json(), "request_id": request_id})\n',
            '                    yield "event: done\\ndata: [DONE]\\n\\n"\n',
        ),
    ),
    breaks=("streaming.done",),
    expected_failures=frozenset(
        {
            "a_chunk_that_is_not_json_is_skipped_or_ends_the_stream",
            "a_stream_falls_back_too",
            "a_stream_retries_failures_before_its_first_token",
            "an_answer_ended_for_its_length_is_delivered",
            "an_endless_stream_is_cut_off_at_the_deadline",
            "no_fallback_when_the_primary_recovers",
            "stream_is_token_events_then_done",
            "streams_run_side_by_side",
            "the_done_event_carries_the_metadata",
            "tokens_arrive_while_the_model_writes",
        }
    ),
    from_brief=True,
)


DONE_METADATA_NESTED = Mutant(
    "done_metadata_nested",
    'The done event\'s data wraps the metadata in {"metadata": {...}}: it has no `model` of its '
    "own.",
    (
        Edit(
            "streaming.py",
            'yield _event("done", {**event.to_json(), "request_id": request_id})',
            'metadata = {**event.to_json(), "request_id": request_id}\n'
            '                    yield _event("done", {"metadata": metadata})',
        ),
    ),
    breaks=("streaming.done",),
    expected_failures=frozenset(
        {
            "a_stream_falls_back_too",
            "no_fallback_when_the_primary_recovers",
            "stream_is_token_events_then_done",
            "the_done_event_carries_the_metadata",
        }
    ),
    from_brief=True,
)


ERROR_EVENT_MESSAGE_ONLY = Mutant(
    "error_event_message_only",
    'The error event\'s data is {"message": ...} alone, without `code` and `retryable`.',
    (
        Edit(
            "streaming.py",
            '            yield _event("error", error.to_json())\n',
            '            yield _event("error", {"message": str(error)})\n',
        ),
    ),
    breaks=("streaming.error",),
    expected_failures=frozenset(
        {
            "a_failure_midway_ends_with_an_error_event",
            "a_slow_token_drip_is_cut_off_at_the_deadline",
            "a_stream_that_stalls_midway_is_cut_off_at_the_deadline",
            "an_endless_stream_is_cut_off_at_the_deadline",
            "every_failure_is_told_in_the_error_shape",
        }
    ),
    from_brief=True,
)


MIDWAY_FAILURE_UNCAUGHT = Mutant(
    "midway_failure_uncaught",
    "Failures are turned into the app's errors around the attempts only: one after the first "
    "piece (a reset, an error chunk) escapes as it is, and the stream breaks off without an "
    "`error` event.",
    (
        Edit(
            "answers.py",
            "        try:\n"
            "            return await anext(pieces, None)\n"
            "        except Exception as error:\n"
            "            if is_transient(error):\n"
            '                raise AnswerInterrupted("The answer broke off.") from error\n'
            "            raise\n",
            "        return await anext(pieces, None)\n",
        ),
    ),
    breaks=("streaming.error",),
    expected_failures=frozenset(
        {
            "a_failure_midway_ends_with_an_error_event",
            "nothing_is_retried_once_tokens_were_sent",
        }
    ),
    from_brief=True,
)


MIDWAY_FAILURE_ENDS_WITH_DONE = Mutant(
    "midway_failure_ends_with_done",
    "A stream that breaks off after its first piece is taken as finished: the user gets the "
    "pieces so far, then `done`, as if the answer were whole.",
    (
        Edit(
            "answers.py",
            '                raise AnswerInterrupted("The answer broke off.") from error\n',
            "                return None  # the model stopped: the answer is what came\n",
        ),
    ),
    breaks=("streaming.error",),
    expected_failures=frozenset(
        {
            "a_failure_midway_ends_with_an_error_event",
            "nothing_is_retried_once_tokens_were_sent",
        }
    ),
    from_brief=True,
)


PAGE_ASKS_WHOLE_ANSWER = Mutant(
    "page_asks_whole_answer",
    "The page still asks POST /api/answer and shows the answer once it is whole; the stream "
    "endpoint is there, but the page never uses it.",
    (
        Edit(
            "static/index.html",
            'const response = await fetch("/api/answer/stream", {',
            'const response = await fetch("/api/answer", {',
        ),
        Edit(
            "static/index.html",
            "        let finished = false;\n"
            "        for await (const { name, data } of serverSentEvents(response.body)) {\n"
            '          if (name === "token") {\n'
            '            if (!started) answer.textContent = "";\n'
            "            started = true;\n"
            "            answer.textContent += data.text;\n"
            '          } else if (name === "done") {\n'
            "            finished = true;\n"
            "            const seconds = (data.latency_ms / 1000).toFixed(1);\n"
            "            meta.textContent = `Answered by ${data.model}`"
            ' + (data.fallback ? " (fallback model)" : "") + ` in ${seconds} s`;\n'
            '          } else if (name === "error") {\n'
            "            finished = true;\n"
            '            showError(data.message + (data.retryable ? " Please try again." : ""),'
            " started);\n"
            "          }\n"
            "        }\n"
            '        if (!finished) '
            'showError("The answer broke off. Please try again.", started);\n',
            "        const data = await response.json();\n"
            "        answer.textContent = data.answer;\n"
            "        const seconds = (data.latency_ms / 1000).toFixed(1);\n"
            "        meta.textContent = `Answered by ${data.model}`"
            ' + (data.fallback ? " (fallback model)" : "") + ` in ${seconds} s`;\n',
        ),
    ),
    breaks=("streaming.page",),
    expected_failures=frozenset({"the_page_reads_the_stream"}),
    from_brief=True,
)


PAGE_USES_EVENT_SOURCE = Mutant(
    "page_uses_event_source",
    "The page reads the stream with EventSource, which can only GET: its request, "
    "GET /api/answer/stream?question=..., is a 405 and the page shows no answer.",
    (
        Edit(
            "static/index.html",
            "      try {\n"
            '        const response = await fetch("/api/answer/stream", {\n'
            '          method: "POST",\n'
            '          headers: { "Content-Type": "application/json" },\n'
            "          body: JSON.stringify({ question }),\n"
            "          signal: asking.signal,\n"
            "        });\n"
            "        if (!response.ok) {\n"
            "          const body = await response.json().catch(() => ({}));\n"
            "          throw new Error("
            "body.message || `The server answered ${response.status}.`);\n"
            "        }\n"
            "        let finished = false;\n"
            "        for await (const { name, data } of serverSentEvents(response.body)) {\n"
            '          if (name === "token") {\n'
            '            if (!started) answer.textContent = "";\n'
            "            started = true;\n"
            "            answer.textContent += data.text;\n"
            '          } else if (name === "done") {\n'
            "            finished = true;\n"
            "            const seconds = (data.latency_ms / 1000).toFixed(1);\n",
            "      const source = new EventSource("
            "`/api/answer/stream?question=${encodeURIComponent(question)}`);\n"
            "      asking.signal.addEventListener(\"abort\", () => source.close());\n"
            '      source.addEventListener("token", (event) => {\n'
            '        if (!started) answer.textContent = "";\n'
            "        started = true;\n"
            "        answer.textContent += JSON.parse(event.data).text;\n"
            "      });\n"
            '      source.addEventListener("done", (event) => {\n'
            "        source.close();\n"
            "        const data = JSON.parse(event.data);\n"
            "        const seconds = (data.latency_ms / 1000).toFixed(1);\n",
        ),
        Edit(
            "static/index.html",
            '          } else if (name === "error") {\n'
            "            finished = true;\n"
            '            showError(data.message + (data.retryable ? " Please try again." : ""),'
            " started);\n"
            "          }\n"
            "        }\n"
            '        if (!finished) '
            'showError("The answer broke off. Please try again.", started);\n'
            "      } catch (error) {\n"
            '        if (error.name !== "AbortError") showError(error.message, started);\n'
            "      }\n",
            "      });\n"
            '      source.addEventListener("error", (event) => {\n'
            "        source.close();\n"
            '        const data = event.data ? JSON.parse(event.data) : { message: "The answer '
            'broke off." };\n'
            "        showError(data.message, started);\n"
            "      });\n",
        ),
    ),
    breaks=("streaming.page",),
    expected_failures=frozenset({"the_page_reads_the_stream"}),
    from_brief=True,
)


PAGE_READS_TOKEN_FIELD = Mutant(
    "page_reads_token_field",
    "The page appends each token event's `data.token`, a field the event does not have: the "
    "answer shows as undefinedundefined...",
    (
        Edit(
            "static/index.html",
            "answer.textContent += data.text;",
            "answer.textContent += data.token;",
        ),
    ),
    breaks=("streaming.page",),
    expected_failures=frozenset({"the_page_reads_the_stream"}),
    from_brief=True,
)


PAGE_READS_STREAM_WHOLE = Mutant(
    "page_reads_stream_whole",
    "The page reads the whole response body, then splits it into events: it asks the stream, "
    "but shows the answer only once the stream has ended.",
    (
        Edit(
            "static/index.html",
            "      const reader = body.pipeThrough(new TextDecoderStream()).getReader();\n"
            '      let buffer = "";\n'
            "      for (;;) {\n"
            "        const { value, done } = await reader.read();\n"
            "        if (done) return;\n"
            "        buffer += value;\n"
            "        let end;\n"
            '        while ((end = buffer.indexOf("\\n\\n")) >= 0) {\n'
            '          const lines = buffer.slice(0, end).split("\\n");\n'
            "          buffer = buffer.slice(end + 2);\n",
            "      const text = await new Response(body).text();\n"
            "      if (text) {\n"
            '        for (const block of text.split("\\n\\n")) {\n'
            '          const lines = block.split("\\n");\n',
        ),
    ),
    breaks=("streaming.page",),
    expected_failures=frozenset({"the_page_reads_the_stream"}),
    from_brief=True,
)


MUTANTS: list[Mutant] = [
    BUFFER_THEN_STREAM,
    NO_ERROR_EVENT,
    STRIPS_TOKENS,
    NO_EVENT_STREAM_TYPE,
    EVENTS_NOT_SEPARATED,
    TOKENS_AS_MESSAGES,
    TOKEN_FIELD_CONTENT,
    TOKENS_IN_FIVES,
    TOKENS_BY_SENTENCE,
    TOKEN_JSON_BY_HAND,
    TOKENS_HTML_ESCAPED,
    FIRST_TOKEN_LSTRIPPED,
    NEWLINES_ESCAPED_TWICE,
    TOKENS_PRINTABLE_ONLY,
    DONE_AS_SENTINEL,
    DONE_METADATA_NESTED,
    ERROR_EVENT_MESSAGE_ONLY,
    MIDWAY_FAILURE_UNCAUGHT,
    MIDWAY_FAILURE_ENDS_WITH_DONE,
    PAGE_ASKS_WHOLE_ANSWER,
    PAGE_USES_EVENT_SOURCE,
    PAGE_READS_TOKEN_FIELD,
    PAGE_READS_STREAM_WHOLE,
]
