"""The Lua scripts behind every image state transition (used only by ``infra.status``).

Each script checks the image's current state and moves the batch counters, the metric totals and
the events stream in the same atomic step, so ``queued + running + done + failed + cancelled``
always equals ``total``. Each also notices when its transition was the one that finished the
batch (every image final): it sets ``finished_at`` once and, when the batch has a webhook URL,
marks the webhook ``pending`` and returns 1 so that the caller sends it, exactly once.
"""

from __future__ import annotations

# Shared by the scripts below. n() reads a missing counter as 0 (HMGET gives false for those).
_COMMON = """
local function n(value) return tonumber(value) or 0 end
local function complete(batch, now)
  local b = redis.call('HMGET', batch, 'total', 'done', 'failed', 'cancelled')
  if n(b[2]) + n(b[3]) + n(b[4]) ~= n(b[1]) then return 0 end
  if redis.call('HSETNX', batch, 'finished_at', now) == 0 then return 0 end
  if redis.call('HEXISTS', batch, 'webhook_url') == 0 then return 0 end
  redis.call('HSET', batch, 'webhook_status', 'pending')
  return 1
end
"""

CANCELLED_REASON = "cancelled before it started"
"""The error text of an image skipped because its batch was cancelled."""

# KEYS: image, batch, events, metrics. ARGV: max_deliveries, now, worker, ttl, maxlen, batch, image.
# Returns {outcome, deliveries, completed}.
START = (
    _COMMON
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', 0, 0} end
if state ~= 'queued' and state ~= 'running' then return {state, 0, 0} end
local now = ARGV[2]
local deliveries = 0
if state == 'queued' and redis.call('HEXISTS', KEYS[2], 'cancelled_at') == 1 then
  redis.call('HINCRBY', KEYS[2], 'queued', -1)
  redis.call('HINCRBY', KEYS[2], 'cancelled', 1)
  redis.call('HINCRBY', KEYS[4], 'images:cancelled', 1)
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'stage', 'cancelled', 'finished_at', now,
    'error', '"""
    + CANCELLED_REASON
    + """')
  state = 'cancelled'
else
  deliveries = redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
  if deliveries > tonumber(ARGV[1]) then
    redis.call('HINCRBY', KEYS[2], state, -1)
    redis.call('HINCRBY', KEYS[2], 'failed', 1)
    redis.call('HINCRBY', KEYS[4], 'images:failed', 1)
    redis.call('HSET', KEYS[1], 'state', 'failed', 'finished_at', now, 'error',
      'poison: delivered ' .. deliveries .. ' times without finishing')
    state = 'poison'
  else
    if state == 'queued' then
      redis.call('HINCRBY', KEYS[2], 'queued', -1)
      redis.call('HINCRBY', KEYS[2], 'running', 1)
    end
    redis.call('HSET', KEYS[1], 'state', 'running', 'started_at', now, 'worker', ARGV[3],
      'stage', 'queued')
    redis.call('HSETNX', KEYS[2], 'started_at', now)
    state = 'running'
  end
end
local completed = complete(KEYS[2], now)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'batch', ARGV[6], 'image', ARGV[7],
  'state', state == 'poison' and 'failed' or state)
return {state, deliveries, completed}
"""
)

# KEYS: image, batch, events, metrics, rate. ARGV: new state, now, ttl, maxlen, batch, image,
# rate bucket, number of record pairs, record field/value pairs..., metric field/increment pairs...
# Returns {state now, completed}.
FINISH = (
    _COMMON
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' then return {state or 'missing', 0} end
local new = ARGV[1]
local now = ARGV[2]
redis.call('HINCRBY', KEYS[2], 'running', -1)
redis.call('HINCRBY', KEYS[2], new, 1)
redis.call('HSET', KEYS[1], 'state', new)
local last = 8 + 2 * tonumber(ARGV[8])
for i = 9, last, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if new ~= 'queued' then
  redis.call('HSET', KEYS[1], 'finished_at', now)
  redis.call('HINCRBY', KEYS[4], 'images:' .. new, 1)
  redis.call('HINCRBY', KEYS[5], ARGV[7], 1)
  redis.call('EXPIRE', KEYS[5], ARGV[3])
  for i = last + 1, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[4], ARGV[i], ARGV[i + 1]) end
end
local completed = complete(KEYS[2], now)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'batch', ARGV[5], 'image', ARGV[6],
  'state', new)
return {new, completed}
"""
)

# KEYS: batch, events, metrics, image keys... ARGV: now, ttl, maxlen, batch, image ids...
# (ARGV[4 + i] is the id of KEYS[3 + i]). Sets the batch's cancel flag and moves the given images
# that are still queued to cancelled. Returns {moved, completed}, or {-1, 0} for no such batch.
CANCEL = (
    _COMMON
    + """
if redis.call('HEXISTS', KEYS[1], 'total') == 0 then return {-1, 0} end
local now = ARGV[1]
redis.call('HSETNX', KEYS[1], 'cancelled_at', now)
local moved = 0
for i = 4, #KEYS do
  if redis.call('HGET', KEYS[i], 'state') == 'queued' then
    redis.call('HSET', KEYS[i], 'state', 'cancelled', 'stage', 'cancelled', 'finished_at', now,
      'error', '"""
    + CANCELLED_REASON
    + """')
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'batch', ARGV[4],
      'image', ARGV[i + 1], 'state', 'cancelled')
    moved = moved + 1
  end
end
if moved > 0 then
  redis.call('HINCRBY', KEYS[1], 'queued', -moved)
  redis.call('HINCRBY', KEYS[1], 'cancelled', moved)
  redis.call('HINCRBY', KEYS[3], 'images:cancelled', moved)
end
local completed = complete(KEYS[1], now)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {moved, completed}
"""
)
