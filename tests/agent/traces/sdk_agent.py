"""An agent traced with the real `opik` SDK, run as a subprocess by the trace-sink tests.

argv[1] is the question; a question containing "refund" makes the tool span raise, so the trace
has an errored span and a low feedback score, as a failing production run would. With argv[1] ==
"--client", the low-level client logs one trace, then updates it and scores it and its span
(the SDK's PATCH and feedback-score requests).
"""

import sys

import opik


@opik.track(name="lookup_policy", type="tool")
def lookup_policy(question: str) -> str:
    if "refund" in question:
        raise KeyError("refund_window")
    return "shipping takes 3 days"


@opik.track(name="call_model", type="llm")
def call_model(question: str, context: str) -> str:
    return f"answer({question}; {context})"


@opik.track(name="support_agent", tags=["support"], metadata={"release": "r7"})
def support_agent(question: str) -> str:
    try:
        context = lookup_policy(question)
    except KeyError:
        context = "no policy found"
        opik.opik_context.update_current_trace(
            feedback_scores=[{"name": "correct", "value": 0.0, "reason": "said no policy"}]
        )
    return call_model(question, context)


def client_calls() -> None:
    client = opik.Opik(project_name="client-project")
    client.auth_check()
    trace = client.trace(name="client_trace", input={"q": "patched?"}, tags=["client"])
    span = trace.span(name="client_span", type="tool", input={"x": 1})
    span.end(output={"y": 2})
    trace.end(output={"a": "first"})
    client.flush()
    client.update_trace(trace.id, project_name="client-project", output={"a": "patched"})
    client.update_span(
        span.id, trace.id, None, project_name="client-project", metadata={"checked": True}
    )
    client.log_spans_feedback_scores([{"id": span.id, "name": "useful", "value": 0.75}])
    client.flush()
    print(trace.id)


if __name__ == "__main__":
    if sys.argv[1] == "--client":
        client_calls()
    else:
        print(support_agent(sys.argv[1]))
        opik.flush_tracker()
