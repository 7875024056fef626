"""The fleet at a glance: queue depth per lane, workers online and busy, images per minute.

    GET /v1/fleet     -> Fleet

Queue depths are read from the broker (a few LLENs), workers from their heartbeats as the app's
background watch last heard them (``producer.fleet``: never a broadcast per request), images per
minute over the last hour from the caller's tenant's ring (``infra.status.throughput``). The
lanes are shared by every tenant, so every key sees their depth and how many workers serve
them; the workers' names and heartbeats are shown to the operator only (the single-tenant
``default`` tenant's submit keys, who also get the Flower link).
"""

from __future__ import annotations

import threading
from typing import Any

import redis
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from infra.errors import StatusUnavailable
from infra.status import throughput
from infra.tenants import DEFAULT_TENANT, Principal
from producer.client import Client
from producer.fleet import FleetWatch
from producer.http.metrics import queue_depths
from producer.http.routes import ERRORS, Caller

router = APIRouter(prefix="/v1", responses=ERRORS)


class Worker(BaseModel):
    """One worker as its last heartbeat showed it."""

    name: str
    online: bool
    busy: bool
    active: int = Field(description="Tasks it was running at its last heartbeat.")
    processed: int = Field(description="Tasks it ran since it started.")
    last_heartbeat: float = Field(description="When its last heartbeat arrived (unix seconds).")


class Minute(BaseModel):
    """Images of the caller's tenant that ended in one minute (starting at ``at``)."""

    at: float
    done: int
    failed: int


class Fleet(BaseModel):
    """Queues, workers and the tenant's last hour."""

    queues: dict[str, int] = Field(description="Messages waiting per lane.")
    workers_online: int
    workers_busy: int
    workers: list[Worker] = Field(description="Each worker (the operator's keys only).")
    watching: bool = Field(description="False while the heartbeat watch cannot hear the broker.")
    minutes: list[Minute] = Field(description="The last 60 minutes, oldest first.")
    done_last_hour: int
    failed_last_hour: int
    failure_rate: float | None = Field(description="failed / (done + failed), last hour.")


class FleetView:
    """What the app keeps to answer fleet questions: a broker client and the heartbeat watch."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.broker: Any = redis.Redis.from_url(client.settings.broker, decode_responses=True)
        self.watch = FleetWatch(client.app).start()

    def answer(self, principal: Principal) -> Fleet:
        """The fleet as principal may see it."""
        try:
            queues = queue_depths(self.broker)
        except redis.RedisError as error:
            raise StatusUnavailable(f"broker unavailable: {error}") from error
        seen = self.watch.workers()
        minutes = throughput.read(self.client.status_store, principal.tenant.name)
        done, failed = sum(m.done for m in minutes), sum(m.failed for m in minutes)
        operator = principal.tenant.name == DEFAULT_TENANT and principal.may_submit
        workers = [
            Worker(
                name=w.name,
                online=w.online,
                busy=w.active > 0,
                active=w.active,
                processed=w.processed,
                last_heartbeat=w.last_heartbeat,
            )
            for w in seen
        ]
        return Fleet(
            queues=queues,
            workers_online=sum(w.online for w in seen),
            workers_busy=sum(w.online and w.active > 0 for w in seen),
            workers=workers if operator else [],
            watching=self.watch.listening,
            minutes=[Minute(at=m.at, done=m.done, failed=m.failed) for m in minutes],
            done_last_hour=done,
            failed_last_hour=failed,
            failure_rate=round(failed / (done + failed), 4) if done + failed else None,
        )

    def close(self) -> None:
        """Stop the watch and drop the broker client."""
        self.watch.stop()
        self.broker.close()


_CREATING = threading.Lock()


def view_of(request: Request) -> FleetView:
    """The app's fleet view: the one its server started, or one started now (an app served
    without its lifespan)."""
    state = request.app.state
    with _CREATING:  # routes run in a thread pool: two first requests must not start two
        if getattr(state, "fleet", None) is None:
            state.fleet = FleetView(state.client)
    view: FleetView = state.fleet
    return view


@router.get("/fleet", response_model=Fleet)
def fleet(request: Request, who: Caller) -> Fleet:
    """Queue depth per lane, workers online and busy, the tenant's images per minute."""
    return view_of(request).answer(who)
