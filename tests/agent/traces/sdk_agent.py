"""An agent traced with the real `opik` SDK, run as a subprocess by the trace-sink tests.

argv[1] is the question; a question containing "refund" makes the tool span raise, so the trace
has an errored span and a low feedback score, as a failing production run would.
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


if __name__ == "__main__":
    print(support_agent(sys.argv[1]))
    opik.flush_tracker()
