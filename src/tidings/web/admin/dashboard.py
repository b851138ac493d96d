"""The console's first page: per newsletter counts, next send, last editions, 90-day chart."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tidings.deliver.heartbeats import roll_call
from tidings.reports.insights import history, overview
from tidings.web.admin.charts import chart
from tidings.web.admin.session import Context, Viewer, console_page

router = APIRouter(prefix="/admin")


@router.get("", response_class=HTMLResponse)
def dashboard(request: Request, context: Context, account: Viewer) -> HTMLResponse:
    points = history(context.db, None)
    charts = [
        chart("Active subscribers", [(p.day, p.subscribers) for p in points], bars=False),
        chart("Messages sent by each day's editions", [(p.day, p.sent) for p in points], bars=True),
    ]
    # The Workers panel and its warning, judged on the database's clock (as /readyz does):
    # "last beat N s ago" counts from the time the roll was called at, not this host's.
    workers = roll_call(context.db)
    return console_page(
        request,
        context,
        account,
        "dashboard.html",
        newsletters=overview(context.db),
        charts=charts,
        workers=workers,
        now=workers.now,
    )
