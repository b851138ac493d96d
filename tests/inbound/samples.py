"""The real-world inbound samples of ``samples/``, with their placeholders filled in:
``{{RETURN_PATH}}`` (the delivery's envelope sender), ``{{READER}}``, ``{{MESSAGE_ID}}``,
``{{UNSUBSCRIBE}}`` (the List-Unsubscribe mailto address) and ``{{RECIPIENT}}`` (where an
auto-reply or a person's mail was sent)."""

from pathlib import Path

SAMPLES = Path(__file__).parent / "samples"

#: Filled in when a test does not care.
DEFAULTS = {
    "RETURN_PATH": "b-12-aaaaaaaaaaaaaaaa@bounce.example.ge",
    "READER": "nino@example.ge",
    "MESSAGE_ID": "<tidings.1.0badcafe0badcafe0badcafe0badcafe@messenger.example.ge>",
    "UNSUBSCRIBE": "u-3-bbbbbbbbbbbbbbbb@bounce.example.ge",
    "RECIPIENT": "u-3-bbbbbbbbbbbbbbbb@bounce.example.ge",
}


def sample(name: str, **values: str) -> bytes:
    """``samples/<name>.eml`` with every placeholder filled (``values`` first)."""
    text = (SAMPLES / f"{name}.eml").read_text()
    for key, default in DEFAULTS.items():
        text = text.replace("{{" + key + "}}", values.get(key, default))
    assert "{{" not in text
    return text.encode()
