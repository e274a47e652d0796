"""bad-deploy (seed 19): a broken release switched in, and the procedure that refuses it.

The seam is the deploy procedure (faults/_contract.py `ReleaseProcedure`), run by
the lab during the load against real parts (lab/rollout.py): the live release
("blue") behind nginx, a new release ("green") started next to it, nginx reloaded
to switch, Alembic to migrate. The release is the same code with its own schema
revision (migration 0009, expand-only, with its downgrade) and its own settings,
where its mistake is, as most bad deploys' is:

- `database-url` (default): the release's DATABASE_URL names the staging database,
  which this server does not have. The process starts and `/healthz` (liveness)
  answers 200; every request that needs the database fails; `/readyz` says so.
- `read-only`: the release's DATABASE_URL is the read replica's. Reads work, so
  `/readyz`'s `SELECT 1` and every page view pass; every order (a write) fails
  ("cannot execute INSERT in a read-only transaction"). Only the traffic shows it.
  The lab has no replica: the connection is opened read-only
  (`default_transaction_read_only`), which is what a hot standby refuses writes as.

Faulty, `SwitchWhenUp`: the script a team writes before its first bad deploy:
migrate, start the new release, wait until its process answers, switch, stop the
old one. Nothing looks at the new release after that, and there is nothing to go
back to.

Fixed, `GatedBlueGreen`: migrate (an expand step the old release runs on too),
start green next to blue; switch only after `/readyz` passed `gate_passes` times
in a row (tenacity's retry until `gate_timeout_s`); keep blue running while the
proxy's own records of green's answers are watched for `bake_s`; an error rate
above `max_error_rate` (or a failing readiness probe) switches back to blue. Both
a refusal and a rollback stop green and run the migration's downgrade, so the
schema is the live release's again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_fixed,
)

from faults._contract import (
    Answer,
    Fleet,
    Instance,
    Release,
    ReleaseProcedure,
    Scenario,
    Symptom,
)
from faults._signs import Clue, Finding, Signs, finding, strength

__all__ = [
    "LIVE_REVISION",
    "RELEASE_REVISION",
    "SCENARIO",
    "DeployParams",
    "GatedBlueGreen",
    "SwitchWhenUp",
    "release_for",
]

LIVE_REVISION = "0008"  # the schema of the release that is live when the run starts
RELEASE_REVISION = "0009"  # the new release's: migration 0009 (expand-only)
STAGING_DATABASE = "shop_staging"

Mistake = Literal["database-url", "read-only"]


class DeployParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mistake: Mistake = Field(
        "database-url",
        description="what is wrong with the new release: database-url (readiness "
        "shows it) or read-only (only traffic shows it)",
    )
    at_s: float = Field(5.0, ge=0, le=600, description="when the deploy starts, into the load")
    gate_passes: int = Field(3, ge=1, le=20, description="fixed: /readyz passes in a row")
    gate_timeout_s: float = Field(10.0, gt=0, le=300, description="fixed: readiness deadline")
    bake_s: float = Field(10.0, ge=0, le=600, description="fixed: watched before blue stops")
    max_error_rate: float = Field(
        0.01, ge=0, le=1, description="fixed: rolled back above this share of 5xx answers"
    )
    min_requests: int = Field(
        20, ge=1, le=100_000, description="fixed: answers seen before the rate is judged"
    )


def _staging_database(live: Mapping[str, str]) -> Mapping[str, str]:
    from sqlalchemy.engine import make_url

    url = make_url(live["DATABASE_URL"]).set(database=STAGING_DATABASE)
    return {"DATABASE_URL": url.render_as_string(hide_password=False)}


def _read_replica(live: Mapping[str, str]) -> Mapping[str, str]:
    from sqlalchemy.engine import make_url

    # As a hot standby is to its clients: every transaction read-only.
    options = {"options": "-c default_transaction_read_only=on"}
    url = make_url(live["DATABASE_URL"]).update_query_dict(options)
    return {"DATABASE_URL": url.render_as_string(hide_password=False)}


def release_for(mistake: Mistake) -> Release:
    if mistake == "database-url":
        return Release(
            "v2", RELEASE_REVISION, _staging_database,
            mistake=f"its DATABASE_URL names the staging database ({STAGING_DATABASE}), "
                    "which production does not have",
        )  # fmt: skip
    return Release(
        "v2", RELEASE_REVISION, _read_replica,
        mistake="its DATABASE_URL is the read replica's: reads work, writes are refused",
    )  # fmt: skip


def _answers(url: str, path: str) -> int | None:
    """The status of one probe, None when nothing answers."""
    try:
        return httpx.get(f"{url}{path}", timeout=2.0).status_code
    except httpx.TransportError:
        return None


class _NotYet(Exception):
    pass


# --- faulty -----------------------------------------------------------------


class SwitchWhenUp:
    """Migrate, start, wait until the process answers, switch, stop the old release."""

    def __init__(self, params: DeployParams) -> None:
        self.release = release_for(params.mistake)
        self.at_s = params.at_s

    def deploy(self, fleet: Fleet) -> str:
        old = fleet.live
        fleet.migrate(self.release.revision)
        new = fleet.start(self.release)
        # "Health check": the process is up. It says nothing about its dependencies.
        for attempt in Retrying(
            stop=stop_after_delay(60), wait=wait_fixed(0.2), sleep=fleet.wait,
            retry=retry_if_exception_type(_NotYet), reraise=True,
        ):  # fmt: skip
            with attempt:
                if _answers(new.url, "/healthz") != 200:
                    raise _NotYet
        fleet.switch(new)
        fleet.stop(old)
        return "switched"


# --- fixed ------------------------------------------------------------------


class GatedBlueGreen:
    """Readiness-gated switch, the old release kept warm while the new one is watched,
    and the way back (switch, stop, downgrade) taken by itself."""

    def __init__(self, params: DeployParams) -> None:
        self.release = release_for(params.mistake)
        self.at_s = params.at_s
        self.params = params

    def _ready(self, fleet: Fleet, new: Instance) -> bool:
        """`gate_passes` readiness answers of 200 in a row, before `gate_timeout_s`."""

        def passes() -> None:
            for _ in range(self.params.gate_passes):
                if _answers(new.url, "/readyz") != 200:
                    raise _NotYet
                fleet.wait(0.2)

        try:
            for attempt in Retrying(
                stop=stop_after_delay(self.params.gate_timeout_s), wait=wait_fixed(0.5),
                sleep=fleet.wait, retry=retry_if_exception_type(_NotYet),
            ):  # fmt: skip
                with attempt:
                    passes()
        except RetryError:
            return False
        return True

    def _back(self, fleet: Fleet, old: Instance, new: Instance, revision: str) -> None:
        """To the old release: its traffic first, then the new process, then the schema."""
        if fleet.live is not old:
            fleet.switch(old)
        fleet.stop(new)
        fleet.migrate(revision)  # the migration's downgrade: the old release's schema

    def deploy(self, fleet: Fleet) -> str:
        old, revision = fleet.live, fleet.revision()
        fleet.migrate(self.release.revision)  # expand-only: the old release runs on it
        new = fleet.start(self.release)
        if not self._ready(fleet, new):
            fleet.note("gate refused", reason="readiness", passes=self.params.gate_passes)
            self._back(fleet, old, new, revision)
            return "refused"
        fleet.switch(new)
        since = time.time()
        waited = 0.0
        while waited < self.params.bake_s:
            fleet.wait(0.5)
            waited += 0.5
            requests, failed = fleet.served(new, since)
            rate = failed / requests if requests else 0.0
            unready = _answers(new.url, "/readyz") != 200
            if unready or (requests >= self.params.min_requests
                           and rate > self.params.max_error_rate):  # fmt: skip
                fleet.note("rolling back", reason="readiness" if unready else "error rate",
                           requests=requests, failed=failed)  # fmt: skip
                self._back(fleet, old, new, revision)
                return "rolled back"
        fleet.stop(old)
        return "switched"


def prepare(variant: str, database_url: str) -> None:
    """The live release's schema (0008), whatever the last run left: each run deploys
    the new release's migration itself."""
    from target_app.migrate import migrate_to

    migrate_to(database_url, LIVE_REVISION)


def _signature(s: Signs) -> Finding | None:
    """A release that fails once traffic reaches it: the upstream that appeared
    last behind the load balancer failed more than 1% of all requests."""
    failed = (s.number("proxy_late_upstream_failed_share") or 0.0) * (
        s.number("proxy_late_upstream_requests") or 0.0
    )
    share = failed / (s.number("requests") or 1.0)
    score = strength(share, 0.01)
    return finding(
        "bad-deploy",
        score,
        (
            Clue("upstreams behind the load balancer", s.number("proxy_upstreams"), "1"),
            Clue("requests failed by the newest upstream, of all", share, "< 0.01"),
        ),
    )


SCENARIO: Scenario[ReleaseProcedure, DeployParams] = Scenario(
    signature=_signature,
    slug="bad-deploy",
    title="A broken release switched in without a gate, and no way back",
    seeds=(19,),
    kind="release",
    summary=(
        "The shop runs behind nginx; five seconds into the load a new release (its own "
        "migration and settings) is deployed. Switched in as soon as its process answers, "
        "its mistake fails every request that needs the database until the run ends. A "
        "readiness-gated blue/green switch with the old release kept warm, an error-rate "
        "watch and an automatic rollback (switch back, stop, downgrade) fail none."
    ),
    faulty=SwitchWhenUp,
    fixed=GatedBlueGreen,
    params=DeployParams,
    requires=("postgres",),
    prepare=prepare,
    workload="storefront",
    default_load={"users": 10, "duration": "25s"},
    symptom=Symptom(
        # The requirement of a deploy: it fails no request. Each failed one is a
        # customer's error page (nginx's own log counts them, status >= 500).
        metric="failed_requests",
        op=">",
        threshold=0,
        description="requests answered with status >= 500 (nginx's access log)",
    ),
    diagnosis="""\
**What you see.** The error rate jumps at the moment of the switch and stays there;
`rollout.json` in the run dir has the timeline (migrated, started, switched, stopped)
and `proxy-access.log` nginx's record of each request with the release that answered
it (its upstream address); `plots/rollout.png` draws both: requests per second by
release, the failures in red, each step as a line. `curl -s localhost:PORT/healthz` on
the new release says ok; `/readyz` says the database does not answer: liveness is not
readiness.

**The fix.** Blue/green with a gate: start the new release next to the live one,
switch (an nginx reload: the old workers finish what they hold) only when its
readiness probe, which checks its dependencies, passes several times in a row; keep
the old release running while the new one's answers are watched in the proxy's
records; when they fail, or readiness does, switch back at once, then stop the new
release and run its migration's downgrade. The migration itself is expand-only, so
the old release runs on the new schema, and the downgrade is tested
(tests/integration/test_migrations.py).
""",
    answers=(
        Answer(
            "Your update breaks production. What is your rollback approach?",
            """\
Make the way back the default, taken by a machine: the old release stays running until
the new one has proved itself, and the procedure that switched to it switches back by
itself. In this lab the new release's mistake is in its settings (its DATABASE_URL names
the staging database). Deployed by a script that switches as soon as the new process
answers, it failed {faulty.failed_requests} requests ({faulty.error_rate} of all) and
was still live at the end of the run, with nothing to go back to. The gated blue/green
procedure started it next to the live release, refused it because its readiness probe
failed, stopped it and downgraded its migration: {fixed.failed_requests} failed
requests. Reproduce with `make fault=bad-deploy compare`.""",
        ),
        Answer(
            "How do you use blue-green deployment?",
            """\
Two releases run side by side behind a proxy that sends traffic to one of them; here it
is nginx, switched by rewriting its upstream and reloading: its old workers finish the
requests they hold, and a client whose idle kept-alive connection is closed under a
request sends it again, as browsers do (tests/integration/test_proxy.py switches 10
times under load and loses none). Green is started next to blue and must pass readiness
(its dependencies answer) several times in a row; then it gets the traffic while blue
stays warm, its answers are watched in the proxy's access log, and an error rate over 1%
or a failing readiness probe switches back to blue, which never stopped, so going back
is one more reload. Only after the watch is blue stopped. With a mistake readiness
cannot see (`--param mistake=read-only`: its DATABASE_URL is the read replica's, so
readiness and page views pass and every order fails), the watch is what catches it: the
lab counts the requests that failed on the new release before the rollback and during it
(`failed_on_new_release`, `failed_during_rollback` in summary.json).""",
        ),
        Answer(
            "How to rollback DB migrations?",
            """\
Mostly, by not having to: a release's migration is an expand step (a new nullable
column, a new table, an index built `CONCURRENTLY`) that the old release runs on too, so
a rollback of the code needs no rollback of the schema, and the contract step (dropping
what the old release used) ships a release later. Then a downgrade is cheap and safe,
and it is tested like the upgrade: migration 0009 here adds a nullable column; the gated
procedure runs its downgrade after traffic is back on the old release, and
tests/integration/test_migrations.py takes every migration up, down and up again on a
real PostgreSQL. The schema revision after the run is in summary.json
(`schema_revision`: {faulty.schema_revision} after the faulty deploy,
{fixed.schema_revision} after the refused one).""",
        ),
    ),
)
