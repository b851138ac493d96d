"""Rendering server-side pages from templates/web (autoescaped)."""

from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from tidings.paths import templates_dir


def page_environment(operator_dir: Path | None) -> Environment:
    loaders = [FileSystemLoader(str(operator_dir / "web"))] if operator_dir else []
    loaders.append(FileSystemLoader(str(templates_dir() / "web")))
    return Environment(loader=ChoiceLoader(loaders), autoescape=select_autoescape(("html", "atom")))


def page(
    environment: Environment, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    body = environment.get_template(template).render(**context)
    # The security headers are added to every response by web.security.SecurityHeaders.
    return HTMLResponse(body, status_code=status_code)
