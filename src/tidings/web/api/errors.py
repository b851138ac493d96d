"""One error shape for every API answer: ``{"error": {"code", "message", "details"}}``."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException

from tidings.errors import Conflict, InvalidInput, NotFound, TidingsError
from tidings.text import as_sentence


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] = []


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    """An API refusal with its HTTP status and machine-readable code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=details or []))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


#: What the documented error answers of every operation look like.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "Malformed request"),
        (401, "Missing or invalid bearer token"),
        (403, "The token's role may not do this"),
        (404, "Not found"),
        (409, "Conflict"),
        (413, "The request body is larger than the server's cap (TIDINGS_MAX_REQUEST_BYTES)"),
        (422, "Invalid input; details name the fields"),
    )
}


def _field(location: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


def _detail(error: Any) -> dict[str, str]:
    """One validation error as the API names it: the field and the problem, in words. A body
    that is not JSON at all is the ``body``'s problem, with the parser's reason and place."""
    if error.get("type") == "json_invalid":
        location = error.get("loc", ())
        where = f" at character {location[-1]}" if len(location) > 1 else ""
        reason = str((error.get("ctx") or {}).get("error", "it cannot be parsed"))
        return {"field": "body", "problem": f"the body is not valid JSON: {reason}{where}"}
    return {"field": _field(error["loc"]), "problem": str(error["msg"])}


def install(api: FastAPI) -> None:
    """Register the handlers that give every failure the one shape."""

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers)

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = [_detail(error) for error in exc.errors()]
        first = details[0] if details else {"field": "request", "problem": "invalid"}
        message = f"{first['field']}: {first['problem']}"
        return error_response(422, "invalid_request", message, details)

    async def domain(request: Request, exc: Exception) -> JSONResponse:
        message = as_sentence(str(exc))
        if isinstance(exc, NotFound):
            return error_response(404, "not_found", message)
        if isinstance(exc, Conflict):
            return error_response(409, "conflict", message)
        if isinstance(exc, InvalidInput):
            return error_response(422, "invalid_input", message)
        return error_response(400, "refused", message)

    async def http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        return error_response(exc.status_code, code, str(exc.detail))

    async def data(request: Request, exc: Exception) -> JSONResponse:
        # The database refused a value (a NUL character, say): the input's fault, not ours.
        return error_response(422, "invalid_input", "A value is not acceptable text.")

    api.add_exception_handler(ApiError, api_error)
    api.add_exception_handler(DataError, data)
    api.add_exception_handler(RequestValidationError, validation)
    api.add_exception_handler(TidingsError, domain)
    api.add_exception_handler(HTTPException, http)
