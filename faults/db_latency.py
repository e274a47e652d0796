"""db-latency (seed 1): "is it DB latency or code latency?", and fewer round trips.

Network condition (both variants): a 200 ms latency toxic on the Postgres link,
as when the database moves to another zone. Seam: `DashboardRepository`, the
user dashboard's repository, used by `GET /users/{user_id}/dashboard`
(`seams.pick(db_latency.SCENARIO)`).
Both variants run on an autocommit connection (no BEGIN/ROLLBACK round trips),
so the only difference is how many times the app waits for the DB.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, text

from faults._contract import Answer, Scenario, Symptom, Toxic
from faults._signs import Clue, Finding, Signs, finding, strength

__all__ = ["SCENARIO", "DashboardParams", "DashboardRepository", "FourRoundTrips", "OneRoundTrip"]


class DashboardParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recent: int = Field(5, ge=1, le=100, description="recent orders on the dashboard")


class DashboardRepository(Protocol):
    """The seam: a user's dashboard read over one connection, or None for no such user."""

    def load(self, conn: Connection, user_id: int) -> dict[str, Any] | None: ...


def _money(total: object) -> str:
    """A sum of NUMERIC(12,2) totals as the app writes money, to the cent ('1623.89').

    A raw `text()` sum is untyped: PostgreSQL returns a Decimal, but SQLite, which
    has no decimal type, a float (1623.8899999999999). Via its shortest repr, a
    float sum of cents is the exact sum give or take far less than a cent.
    """
    return str(Decimal(str(total)).quantize(Decimal("0.01")))


# --- faulty -----------------------------------------------------------------


class FourRoundTrips:
    """One query per widget: each waits a full round trip for the one before."""

    def __init__(self, params: DashboardParams) -> None:
        self.recent = params.recent

    def load(self, conn: Connection, user_id: int) -> dict[str, Any] | None:
        user = conn.execute(
            text("SELECT id, name, email FROM users WHERE id = :id"), {"id": user_id}
        ).first()
        if user is None:
            return None
        orders = conn.scalar(
            text("SELECT count(*) FROM orders WHERE user_id = :id"), {"id": user_id}
        )
        spent = conn.scalar(
            text("SELECT coalesce(sum(total), 0) FROM orders WHERE user_id = :id"), {"id": user_id}
        )
        recent = conn.scalars(
            text("SELECT id FROM orders WHERE user_id = :id ORDER BY id DESC LIMIT :n"),
            {"id": user_id, "n": self.recent},
        ).all()
        return {"id": user.id, "name": user.name, "email": user.email, "orders": orders,
                "spent": _money(spent), "recent_order_ids": list(recent)}  # fmt: skip


# --- fixed ------------------------------------------------------------------


class OneRoundTrip:
    """The same widgets in one statement: the DB does the joining, the app waits once."""

    def __init__(self, params: DashboardParams) -> None:
        self.recent = params.recent

    # PostgreSQL: ARRAY(subquery). SQLite (the embedded default) has no arrays:
    # the same single statement with group_concat.
    _RECENT = {
        "postgresql": "ARRAY(SELECT o.id FROM orders o WHERE o.user_id = u.id "
        "ORDER BY o.id DESC LIMIT :n)",
        "sqlite": "(SELECT group_concat(id) FROM (SELECT o.id FROM orders o "
        "WHERE o.user_id = u.id ORDER BY o.id DESC LIMIT :n))",
    }

    def load(self, conn: Connection, user_id: int) -> dict[str, Any] | None:
        recent_sql = self._RECENT.get(conn.dialect.name, self._RECENT["postgresql"])
        row = conn.execute(
            text(
                f"""
                SELECT u.id, u.name, u.email,
                       (SELECT count(*) FROM orders o WHERE o.user_id = u.id) AS orders,
                       (SELECT coalesce(sum(total), 0) FROM orders o WHERE o.user_id = u.id)
                           AS spent,
                       {recent_sql} AS recent
                FROM users u WHERE u.id = :id
                """
            ),
            {"id": user_id, "n": self.recent},
        ).first()
        if row is None:
            return None
        recent = row.recent
        if isinstance(recent, str):
            recent = [int(i) for i in recent.split(",")]
        return {"id": row.id, "name": row.name, "email": row.email, "orders": row.orders,
                "spent": _money(row.spent), "recent_order_ids": list(recent or [])}  # fmt: skip


def _signature(s: Signs) -> Finding | None:
    """Queries run one after another over a slow link: requests wait on the
    database (Signs.db_bound) for several queries that each take over 50 ms."""
    q = s.number("db_queries_per_request") or 0.0
    if not s.db_bound or not 2 <= q < 20:
        return None
    score = min(strength(s.number("db_query_p50_ms"), 50.0), strength(s.number("p50_ms"), 300.0))
    return finding(
        "db-latency",
        score,
        (
            Clue("median query time", s.number("db_query_p50_ms"), "< 50", "ms"),
            Clue("DB queries per request, in sequence", q, "1"),
        ),
    )


SCENARIO: Scenario[DashboardRepository, DashboardParams] = Scenario(
    signature=_signature,
    environment="latency on the database link",
    slug="db-latency",
    title="Slow endpoint: DB latency or code latency? (200 ms to the database)",
    seeds=(1,),
    kind="network",
    summary=(
        "200 ms of latency on the DB link. The dashboard's four sequential queries wait "
        "four round trips (~800 ms); one statement waits one (~200 ms). CPU per request "
        "does not move: the time is in the DB share of the Server-Timing header."
    ),
    faulty=FourRoundTrips,
    fixed=OneRoundTrip,
    params=DashboardParams,
    requires=("postgres", "toxiproxy"),
    toxics=(Toxic("postgres", "latency", {"latency": 200, "jitter": 0}),),
    workload="dashboard",
    default_load={"users": 20, "duration": "30s"},
    symptom=Symptom(
        metric="p50_ms",
        op=">",
        threshold=500.0,
        description="each request waits several DB round trips of 200 ms",
    ),
    answers=(
        Answer(
            "Your FastAPI endpoint suddenly becomes slow in production. How will you diagnose it?",
            """\
Measure the request's time by component before changing code. With 200 ms on the
Postgres link, the dashboard's p50 is {faulty.p50_ms} ms faulty and {fixed.p50_ms} ms fixed
({ratio.p50_ms} times), the DB share of request time {faulty.db_time_share}, and CPU per
request {faulty.app_cpu_ms_per_request} ms. `Server-Timing` on a single response
(`curl -si localhost:8000/users/1/dashboard | grep -i server-timing`) says the same, and
`pg_stat_statements` shows the statements fast on the server: the time is on the wire.
Reproduce with `make fault=db-latency compare` (needs `make up`).""",
        ),
        Answer(
            "How do you check whether the issue is DB latency or code latency?",
            """\
Read `db_time_share` and `app_cpu_ms_per_request` side by side (summary.json, or the
`db` and `app` entries of `Server-Timing`). DB latency: a high DB share
({faulty.db_time_share} here) with CPU per request flat; code latency: CPU per request
rising with latency and the DB share falling. `db_query_duration_seconds` shows every
statement at the link's 200 ms whatever its plan, so it is round trips, not a slow plan
(slow-query is that case).""",
        ),
        Answer(
            "How do you use async to improve performance here?",
            """\
Async does not shorten a request's sequential awaits: four queries still wait four round
trips. It lets one worker serve other requests while they wait, and lets independent
queries run concurrently (`asyncio.gather` on separate connections). The fix ships fewer
round trips: one statement with subqueries instead of four, which takes p50 from
{faulty.p50_ms} ms to {fixed.p50_ms} ms with the same CPU.""",
        ),
    ),
    diagnosis="""\
**DB latency or code latency?** Read it off the request itself: the
`Server-Timing` header splits every response into `db`, `upstream` and `app`
time (`curl -si localhost:8000/users/1/dashboard | grep -i server-timing`), and
summary.json carries `db_time_share` and `app_cpu_ms_per_request`. Here DB time
is > 80% of request time and CPU per request stays at a fraction of a
millisecond while latency is 800 ms: the app is waiting, not working. A
py-spy profile agrees (the worker threads sit in `psycopg` waits). Code latency
looks the other way round: CPU per request rises with latency, DB share falls.

**Where the latency comes from.** `db_query_duration_seconds` shows every
statement at >= 200 ms regardless of its plan; `pg_stat_statements` (on in the
lab's Postgres) shows the same statements fast on the server: the time is on the
wire, not in the database.

**How async helps.** It does not make one request faster: four sequential
awaits still wait four round trips. It lets one worker serve many waiting
requests, and it lets *independent* queries run concurrently
(`asyncio.gather` over separate connections). The real fix for latency is
fewer round trips: one statement (subqueries, joins, `ARRAY(...)`), batched
loading, no BEGIN/ROLLBACK for single reads, and a DB in the app's zone.
""",
)
