"""The JSON API (/api/v1): a FastAPI sub-application with its own OpenAPI document."""
