"""Prometheus metrics of the app (``GET /metrics``), read from Redis on every scrape.

Nothing is counted in the API process itself: the workers' transitions write the totals and the
stage histograms into Redis (``infra.status.metrics``), so every API replica exposes the same
figures.

    blurq_queue_depth{queue}            messages waiting per Celery queue (priority lists summed)
    blurq_images_total{state}           images that ended done, failed or cancelled
    blurq_stage_seconds{stage}          histogram of seconds per pipeline stage (done images)
    blurq_batches{state}                batches on record: queued, running, finished, cancelled;
                                        and expanding (inputs still being listed, also counted
                                        in one of the four)
    blurq_oldest_queued_batch_seconds   age of the oldest batch none of whose images has started
                                        (0 when there is none): how long work has been waiting
    blurq_webhook_attempts_total{outcome}  completion webhook attempts: delivered, failed (the
                                        last attempt failed), retrying (another one is due)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from infra.celery_app import WORKER_QUEUES
from infra.status import BATCH_PHASES, METRICS_KEY, PHASE_KEYS, StatusStore, stage_histograms

PRIORITY_SEPARATOR = "\x06\x16"
"""How kombu's Redis transport names a queue's priority lists: ``<queue>\\x06\\x16<step>``."""
PRIORITY_STEPS = (0, 3, 6, 9)
WEBHOOK_OUTCOMES = ("delivered", "failed", "retrying")


class RedisCollector(Collector):
    """Reads the figures above from the status Redis and the broker on each scrape."""

    def __init__(self, status: StatusStore, broker: redis.Redis) -> None:
        self.status = status
        # Any: redis-py's stubs cannot know that decode_responses makes every reply a str.
        self.broker: Any = broker

    def collect(self) -> Iterator[Metric]:
        """One family per metric; Redis errors propagate (the route answers 503)."""
        yield self._queue_depth()
        raw = self.status.redis.hgetall(METRICS_KEY)
        images = CounterMetricFamily(
            "blurq_images", "Images that reached a final state.", labels=["state"]
        )
        for state in ("done", "failed", "cancelled"):
            images.add_metric([state], float(raw.get(f"images:{state}", 0)))
        yield images
        stages = HistogramMetricFamily(
            "blurq_stage_seconds", "Seconds per pipeline stage of done images.", labels=["stage"]
        )
        for histogram in stage_histograms(raw):
            stages.add_metric([histogram.stage], histogram.buckets, histogram.total_seconds)
        yield stages
        batches = GaugeMetricFamily(
            "blurq_batches", "Batches on record by state.", labels=["state"]
        )
        for state, count in self.status.batch_states().items():
            batches.add_metric([state], count)
        yield batches
        yield self._oldest_queued()
        webhooks = CounterMetricFamily(
            "blurq_webhook_attempts", "Completion webhook attempts by outcome.", labels=["outcome"]
        )
        for outcome in WEBHOOK_OUTCOMES:
            webhooks.add_metric([outcome], float(raw.get(f"webhooks:{outcome}", 0)))
        yield webhooks

    def _oldest_queued(self) -> GaugeMetricFamily:
        # The queued phase's sorted set is scored by creation time: its first member is oldest.
        queued = PHASE_KEYS[BATCH_PHASES.index("queued")]
        oldest = self.status.redis.zrange(queued, 0, 0, withscores=True)
        age = max(0.0, time.time() - oldest[0][1]) if oldest else 0.0
        return GaugeMetricFamily(
            "blurq_oldest_queued_batch_seconds",
            "Age of the oldest batch none of whose images has started (0: none waits).",
            value=age,
        )

    def _queue_depth(self) -> GaugeMetricFamily:
        depth = GaugeMetricFamily(
            "blurq_queue_depth", "Messages waiting per Celery queue.", labels=["queue"]
        )
        for queue, count in queue_depths(self.broker).items():
            depth.add_metric([queue], float(count))
        return depth


def queue_depths(broker: redis.Redis) -> dict[str, int]:
    """Messages waiting in each of the workers' queues (its priority lists summed)."""
    pipe = broker.pipeline()
    for queue in WORKER_QUEUES:
        for step in PRIORITY_STEPS:
            pipe.llen(f"{queue}{PRIORITY_SEPARATOR}{step}" if step else queue)
    lengths = pipe.execute()
    steps = len(PRIORITY_STEPS)
    return {
        queue: int(sum(lengths[number * steps : (number + 1) * steps]))
        for number, queue in enumerate(WORKER_QUEUES)
    }


def registry(status: StatusStore, broker_url: str) -> CollectorRegistry:
    """A registry of its own per app (the global one would collide across apps in one process)."""
    found = CollectorRegistry(auto_describe=False)
    found.register(RedisCollector(status, redis.Redis.from_url(broker_url, decode_responses=True)))
    return found
