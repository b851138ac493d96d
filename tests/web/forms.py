"""Read the forms of a page the way a browser would: action and hidden fields."""

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Form:
    action: str
    method: str
    hidden: dict[str, str] = field(default_factory=dict)
    #: Every hidden field in page order, repeated names included (``hidden`` keeps the last).
    fields: list[tuple[str, str]] = field(default_factory=list)
    #: The named submit buttons, (name, value), in page order.
    buttons: list[tuple[str, str]] = field(default_factory=list)

    def posted(self) -> dict[str, str | list[str]]:
        """What a browser posts from this form's hidden fields, repeated names as lists."""
        out: dict[str, list[str]] = {}
        for name, value in self.fields:
            out.setdefault(name, []).append(value)
        return {name: values[0] if len(values) == 1 else values for name, values in out.items()}


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(values.get("action", ""), values.get("method", "get")))
        elif tag == "input" and values.get("type") == "hidden" and self.forms:
            name, value = values.get("name", ""), values.get("value", "")
            self.forms[-1].hidden[name] = value
            self.forms[-1].fields.append((name, value))
        elif tag == "button" and values.get("name") and self.forms:
            self.forms[-1].buttons.append((values["name"], values.get("value", "")))


def forms(html: str) -> list[Form]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def form_to(html: str, action: str) -> Form:
    """The form posting to ``action``; fails the test if there is none."""
    found = [f for f in forms(html) if f.action == action]
    assert found, f"no form posts to {action}"
    return found[0]


BUILDER = "/admin/editions/new"


def confirmation(page: str) -> dict[str, str | list[str]]:
    """What pressing the builder's confirmation button ("Yes, ...", the first) posts; fails
    the test if the page is not a confirmation."""
    form = form_to(page, BUILDER)
    posted = form.posted()
    assert posted.get("confirmed") == "1" and posted.get("confirm_token"), "not a confirmation"
    name, value = form.buttons[0]
    return {**posted, name: value}
