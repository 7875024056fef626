"""The Lua scripts behind every image state transition, read once from ``lua/*.lua``.

Each script checks the image's current state and moves the batch counters, the metric totals and
the events stream in the same atomic step, so ``queued + running + done + failed + cancelled``
always equals ``total``. Each also notices when its transition was the one that finished the
batch (every image final): it sets ``finished_at`` once and, when the batch has a webhook URL,
marks the webhook ``pending`` and returns 1 so that the caller sends it, exactly once.

Redis runs a script alone, with no way to import another, so the shared functions of
``lua/common.lua`` are put in front of each script here, once, when this module is imported.
"""

from __future__ import annotations

from importlib.resources import files

_LUA = files("infra.status") / "lua"


def _script(name: str) -> str:
    common = (_LUA / "common.lua").read_text(encoding="utf-8")
    return common + "\n" + (_LUA / f"{name}.lua").read_text(encoding="utf-8")


START = _script("start")
FINISH = _script("finish")
CANCEL = _script("cancel")
