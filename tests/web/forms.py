"""Read the forms of a page the way a browser would: action and hidden fields."""

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Form:
    action: str
    method: str
    hidden: dict[str, str] = field(default_factory=dict)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(values.get("action", ""), values.get("method", "get")))
        elif tag == "input" and values.get("type") == "hidden" and self.forms:
            self.forms[-1].hidden[values.get("name", "")] = values.get("value", "")


def forms(html: str) -> list[Form]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def form_to(html: str, action: str) -> Form:
    """The form posting to ``action``; fails the test if there is none."""
    found = [f for f in forms(html) if f.action == action]
    assert found, f"no form posts to {action}"
    return found[0]
