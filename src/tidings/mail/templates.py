"""The Jinja2 environment for email templates: the operator's folder first, then the built-ins.

A newsletter names a template set (``digest`` by default); each set is a triplet
``email/<set>/{subject.txt, body.html, body.txt}``. TIDINGS_TEMPLATES_DIR may override any
file of any set, file by file. Templates are the operator's files, not editor input; editor
text (intro, subject) never passes through Jinja2.
"""

from dataclasses import dataclass
from pathlib import Path

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    select_autoescape,
)

from tidings.errors import InvalidInput
from tidings.paths import templates_dir

#: The triplet every set has; a folder without all three is not a set.
TRIPLET = ("subject.txt", "body.html", "body.txt")
#: Folders of transactional mail (mail/notice), not newsletter template sets.
NOTICE_KINDS = frozenset({"confirm", "invitation", "password_reset", "welcome"})


@dataclass(frozen=True)
class EmailTemplates:
    """The three templates of one kind of email."""

    subject: Template
    html: Template
    text: Template


def email_environment(operator_dir: Path | None) -> Environment:
    """An environment that looks in ``operator_dir`` first, then in the built-in templates."""
    loaders = [FileSystemLoader(str(operator_dir))] if operator_dir else []
    loaders.append(FileSystemLoader(str(templates_dir())))
    return Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def load_triplet(environment: Environment, template_set: str) -> EmailTemplates:
    """The subject, HTML and text templates of ``template_set``."""
    if "/" in template_set or template_set.startswith("."):
        raise InvalidInput(f"template set {template_set!r} is not a plain name")
    try:
        return EmailTemplates(
            subject=environment.get_template(f"email/{template_set}/subject.txt"),
            html=environment.get_template(f"email/{template_set}/body.html"),
            text=environment.get_template(f"email/{template_set}/body.txt"),
        )
    except TemplateNotFound as exc:
        raise InvalidInput(f"template {exc.name} is missing") from None


def template_sets(operator_dir: Path | None) -> list[str]:
    """The names of the newsletter template sets there are, sorted: every folder under
    ``email/`` (the operator's or the built-in one) whose triplet is complete once the
    operator's files and the built-ins are taken together, the notice kinds left out."""
    roots = [templates_dir() / "email"]
    if operator_dir is not None:
        roots.append(operator_dir / "email")
    names = {
        folder.name
        for root in roots
        if root.is_dir()
        for folder in root.iterdir()
        if folder.is_dir()
    }
    return sorted(
        name
        for name in names - NOTICE_KINDS
        if all(any((root / name / part).is_file() for root in roots) for part in TRIPLET)
    )
