"""create_once: a create that is not safe to resend is sent again only after a lookup shows the
earlier attempt did not land."""

import pytest
import requests

from synapse_ml_track.tracking import retries


class Server:
    """Answers creates from a script: "ok", "lost" (applied, answer lost), "timeout" (not applied), "refuse"."""

    def __init__(self, *script: str) -> None:
        self.script, self.created, self.sent = list(script), [], 0

    def create(self):
        self.sent += 1
        outcome = self.script.pop(0)
        if outcome in ("ok", "lost"):
            self.created.append(f"run-{len(self.created) + 1}")
        if outcome == "ok":
            return self.created[-1]
        if outcome == "refuse":
            raise ValueError("bad request")
        raise requests.ReadTimeout("Read timed out.")

    def find(self):
        return self.created[-1] if self.created else None


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(retries.time, "sleep", lambda seconds: None)


@pytest.mark.parametrize(
    ("script", "attempts", "result", "sent", "created"),
    [
        (["ok"], 3, "run-1", 1, 1),
        (["lost"], 3, "run-1", 1, 1),  # found by the lookup: not sent again
        (["timeout", "ok"], 3, "run-1", 2, 1),
        (["timeout", "timeout", "lost"], 3, "run-1", 3, 1),
    ],
)
def test_a_lost_answer_never_makes_a_second_object(script, attempts, result, sent, created):
    server = Server(*script)
    assert retries.create_once(server.create, server.find, attempts=attempts) == result
    assert (server.sent, len(server.created)) == (sent, created)


@pytest.mark.parametrize(
    ("script", "attempts", "error"), [(["refuse"], 3, ValueError), (["timeout"] * 2, 2, requests.ReadTimeout)]
)
def test_refusals_and_exhausted_attempts_raise(script, attempts, error):
    server = Server(*script)
    with pytest.raises(error):
        retries.create_once(server.create, server.find, attempts=attempts)
    assert server.created == []
