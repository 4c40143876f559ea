"""Error bodies as tests compare them: every error carries its request's id (`request_id`, the
answer's X-Request-Id), which differs from request to request."""


def error_of(reply) -> dict:
    """The error body without its request id, once that id is checked to be the answer's."""
    body = dict(reply.json())
    assert body.pop("request_id") == reply.headers["x-request-id"], body
    return body


def refusal(reply) -> tuple[int, str]:
    """The status and the `code` of an error answer (its request id checked, as `error_of`)."""
    return reply.status_code, error_of(reply)["code"]
