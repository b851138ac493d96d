"""What every command shares: the settings, the database, and friendly error handling."""

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.text import Text
from sqlalchemy.exc import OperationalError, ProgrammingError
from typer.core import TyperGroup

from tidings.config import Settings, load_settings
from tidings.db.engine import Database, open_database
from tidings.errors import TidingsError

P = ParamSpec("P")
R = TypeVar("R")


def _console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


@dataclass
class CliContext:
    """Built once per invocation by the app callback and handed to commands via ``ctx.obj``."""

    settings: Settings
    out: Console = field(default_factory=_console)
    err: Console = field(default_factory=lambda: _console(stderr=True))
    _db: Database | None = field(default=None, init=False)

    def database(self, *, require_current_schema: bool = True) -> Database:
        """The database; by default refuses to work on a schema that is not migrated."""
        if self._db is None:
            self._db = open_database(self.settings.resolved_database_url)
        if require_current_schema:
            from tidings.db.migrate import current_revision, head_revision

            current = current_revision(self._db.engine)
            if current != head_revision(self._db.engine):
                raise TidingsError(
                    f"the database schema is at {current or 'nothing'}, not the current "
                    "version: run 'tidings db upgrade'"
                )
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()


def fail(message: str) -> typer.Exit:
    """Print one error line and give the exit to raise (the message is text, never markup:
    it may quote what the user typed)."""
    from tidings.text import as_sentence  # it brings nh3: only when there is an error

    line = Text.assemble(("error:", "bold red"), " ", as_sentence(message))
    _console(stderr=True).print(line, soft_wrap=True)
    return typer.Exit(code=1)


def _one_line(exc: typer.TyperException) -> str:
    """A usage mistake (or another refusal of the command line) as one sentence, with where
    to read more when it is about how the command was called."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    return f"{message} (see '{ctx.command_path} --help')" if ctx is not None else message


class OneLineErrors(TyperGroup):
    """The root command group: any user mistake, wherever in the tree it is found (a missing
    or malformed option, an unknown command, a refused value), is one line on stderr and exit
    code 1, as the README promises; bugs keep their traceback."""

    def invoke(self, ctx: Any) -> Any:  # Typer's vendored click Context, not public
        try:
            return super().invoke(ctx)
        except typer.TyperException as exc:
            # A group called bare shows its help, as asked (Typer prints it).
            if type(exc).__name__ == "NoArgsIsHelpError":
                raise
            raise fail(_one_line(exc)) from None
        except TidingsError as exc:
            raise fail(str(exc)) from None


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn expected errors into one line and exit code 1 (bugs keep their traceback)."""
    try:
        yield
    except TidingsError as exc:
        raise fail(str(exc)) from None
    except (OperationalError, ProgrammingError) as exc:
        # The driver's message, never the URL (it may carry a password).
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise fail(f"database: {detail}") from None


def friendly(command: Callable[P, R]) -> Callable[P, R]:
    """Decorator for commands: expected errors become one clear line."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with user_errors():
            return command(*args, **kwargs)

    return wrapper


def make_context() -> CliContext:
    """Load the settings (one clear line if a value is bad)."""
    with user_errors():
        return CliContext(settings=load_settings())


def cli_context(ctx: typer.Context) -> CliContext:
    """The shared context of this invocation."""
    obj = ctx.find_root().obj
    if not isinstance(obj, CliContext):
        raise RuntimeError("the tidings app callback did not run")
    return obj
