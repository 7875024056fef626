"""The Lua scripts behind every state transition, read once from ``lua/*.lua``.

Each image transition checks the image's current state and moves the batch counters, the metric
totals, the rate buckets and the events stream in the same atomic step, so
``queued + running + done + failed + cancelled`` always equals ``total``. Each also notices when
it was the transition that finished the batch (every image final): it sets ``finished_at`` once
and, when the batch has a webhook URL, marks the webhook ``pending`` and returns 1 so that the
caller sends it, exactly once.

Redis gives a script no way to load another, so ``lua/common.lua`` (the calling convention and
the shared functions, ``move`` above all) is put in front of each script here, once, when this
module is imported.
"""

from __future__ import annotations

from importlib.resources import files

_LUA = files("infra.status") / "lua"
_COMMON = (_LUA / "common.lua").read_text(encoding="utf-8")


def _script(name: str) -> str:
    return f"{_COMMON}\n-- {name}.lua\n{(_LUA / f'{name}.lua').read_text(encoding='utf-8')}"


NAMES = (
    "start",  # queued -> running; or cancelled (cancelled batch), failed (poison), or left alone
    "complete",  # running -> done, with timings and output
    "fail",  # running -> failed, with the reason
    "requeue",  # running -> queued, for a transient failure that is retried
    "reject",  # queued | running -> failed, for a message that breaks the job contract
    "cancel",  # a batch's queued images -> cancelled, and its cancel flag set
    "retry",  # a batch's failed images -> queued, and a finished batch running again
    "create_begin",  # batch creation 1/3: claim the id (taking over a half-written batch)
    "create_images",  # batch creation 2/3: one chunk of queued image records
    "create_end",  # batch creation 3/3: the counters that make the batch exist
    "update",  # set fields of a record only while it exists
    "claim_sending",  # who sends a created batch's messages (a lease, taken over when idle)
    "drop_half_created",  # what a creation that stopped half-way wrote, a chunk at a time
    "expand_begin",  # a prefix or manifest batch exists at once, expanding, with no images yet
    "expand_claim",  # who expands it (a lease, taken over when its expander stalls)
    "expand_reserve",  # its counted inputs against the tenant's outstanding images
    "expand_images",  # one chunk of its images, queued
    "expand_end",  # all found, or failed as a whole
)
"""Every script, by the name of its file in ``lua/``."""
SCRIPTS = {name: _script(name) for name in NAMES}
"""The source of each script, shared functions first."""
