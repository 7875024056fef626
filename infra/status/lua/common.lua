-- Shared by every transition script: transitions.py reads this file once and puts it in front
-- of each script (Redis gives a script no way to load another).
--
-- The image transitions (start, complete, fail, requeue, reject) share one calling convention:
--   KEYS: image, batch, batch's image list, batch's rate buckets, events stream, metrics hash,
--         the batch's tenant's counters, the four batch phase sets (queued, running, finished,
--         cancelled), the due webhooks, the running images
--   ARGV: now, ttl, events maxlen, batch id, image id, rate bucket, then the script's own
-- Each returns {state the image has now, completed}; start adds its deliveries count.

-- The error text of an image skipped because its batch was cancelled.
local CANCELLED_REASON = 'cancelled before it started'

-- A missing counter reads as 0 (HMGET gives false for those).
local function n(value) return tonumber(value) or 0 end

-- The batch phases' sorted sets (batch id -> created time), one per phase, from KEYS[first] on:
-- queued, running, finished, cancelled. Counting the batches in a phase is a ZCARD.
local PHASES = {'queued', 'running', 'finished', 'cancelled'}
local function phase_keys(first)
  local keys = {}
  for i, phase in ipairs(PHASES) do keys[phase] = KEYS[first + i - 1] end
  return keys
end

-- Moves a batch into a phase: queued (created), running (an image started), finished (every
-- image final) or cancelled (a cancel was asked: for good). It keeps its created time as score;
-- a batch found in no set (recorded before phases were kept) takes it from its record.
local function set_phase(phases, batch, batch_id, to)
  if redis.call('ZSCORE', phases.cancelled, batch_id) then return end
  local created = nil
  for _, phase in ipairs(PHASES) do
    local score = redis.call('ZSCORE', phases[phase], batch_id)
    if score and phase == to then return end
    if score then
      created = score
      redis.call('ZREM', phases[phase], batch_id)
    end
  end
  created = created or redis.call('HGET', batch, 'created_at')
  if created then redis.call('ZADD', phases[to], created, batch_id) end
end

-- Notes the batch's first start (a worker took one of its images): it is running from now on.
local function batch_started(c)
  if redis.call('HSETNX', c.batch, 'started_at', c.now) == 1 then
    set_phase(c.phases, c.batch, c.batch_id, 'running')
  end
end

-- The image transitions' KEYS and shared ARGV, by name.
local function image_call()
  return {
    image = KEYS[1], batch = KEYS[2], images = KEYS[3], rate = KEYS[4], events = KEYS[5],
    metrics = KEYS[6], tenant = KEYS[7], now = ARGV[1], ttl = ARGV[2], maxlen = ARGV[3],
    batch_id = ARGV[4], image_id = ARGV[5], bucket = ARGV[6], phases = phase_keys(8),
    due = KEYS[12], running = KEYS[13],
  }
end

-- Keeps the index of running images (<batch id>:<image id> -> when it last started), which the
-- maintenance sweep reads to find images whose message was lost.
local function track_running(c, to)
  local member = c.batch_id .. ':' .. c.image_id
  if to == 'running' then
    redis.call('ZADD', c.running, c.now, member)
  else
    redis.call('ZREM', c.running, member)
  end
end

-- The batch record and the keys that live as long as it get a fresh TTL together, so that a
-- batch running longer than the TTL keeps its image list and rate buckets.
local function keep_batch(batch, images, rate, ttl)
  for _, key in ipairs({batch, images, rate}) do redis.call('EXPIRE', key, ttl) end
end

-- Returns 1 when this transition finished the batch (every image final, and its inputs all
-- found: not expanding) and the batch has a webhook: finished_at is set once, the tenant's
-- active batches drop by one, and the webhook is marked pending and joins the due webhooks (the
-- sweep sends it again if its task never ran), so the caller sends it once.
local function batch_completed(batch, now, phases, batch_id, tenant, due)
  if redis.call('HEXISTS', batch, 'expanding') == 1 then return 0 end
  local b = redis.call('HMGET', batch, 'total', 'done', 'failed', 'cancelled')
  if n(b[2]) + n(b[3]) + n(b[4]) ~= n(b[1]) then return 0 end
  if redis.call('HSETNX', batch, 'finished_at', now) == 0 then return 0 end
  set_phase(phases, batch, batch_id, 'finished')
  redis.call('HINCRBY', tenant, 'active', -1)
  if redis.call('HEXISTS', batch, 'webhook_url') == 0 then return 0 end
  redis.call('HSET', batch, 'webhook_status', 'pending')
  redis.call('ZADD', due, now, batch_id)
  return 1
end

local function event(events, maxlen, batch_id, image_id, state)
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'batch', batch_id, 'image', image_id,
    'state', state)
end

-- A failure this soon after its start (a missing key, a file that is not an image) took no
-- worker time worth counting: it stays out of the batch's rate, which would jump otherwise.
local INSTANT_FAILURE_S = 1

-- Counts one image that ended done or failed in the per-minute ring of a hash (a tenant's
-- counters, the metrics): 60 slots, slot = minute mod 60, each with the minute it counts
-- (minute:<slot>) and its done:<slot> and failed:<slot>; a slot is reset when its minute comes
-- round again, so the hash stays 180 fields and the last hour can be read in one HGETALL.
local function count_minute(hash, to, now)
  local minute = tostring(math.floor(tonumber(now) / 60))
  local slot = tostring(math.floor(tonumber(now) / 60) % 60)
  if redis.call('HGET', hash, 'minute:' .. slot) ~= minute then
    redis.call('HSET', hash, 'minute:' .. slot, minute, 'done:' .. slot, 0, 'failed:' .. slot, 0)
  end
  redis.call('HINCRBY', hash, to .. ':' .. slot, 1)
end

-- Counts a processed image in the batch's rate buckets, unless it is a failure that came at
-- once; the first one counted marks the batch warm (warm_at), so that the rate is measured
-- from then and a cold worker's model loading does not count as the batch's pace.
local function count_rate(c, to)
  if to == 'failed' then
    local started = tonumber(redis.call('HGET', c.image, 'started_at'))
    if not started or tonumber(c.now) - started < INSTANT_FAILURE_S then return end
  end
  redis.call('HINCRBY', c.rate, c.bucket, 1)
  redis.call('HSETNX', c.batch, 'warm_at', c.now)
end

-- Moves the image of call c from state `from` to state `to`, writing the record fields given as
-- a flat {field, value, ...} list: the batch counters move in the same step, a final state is
-- timed and counted in the metrics, done and failed images in the rate buckets (cancelled ones
-- took no time, instant failures are left out: count_rate) and in the per-minute rings of the
-- tenant and of the metrics. TTLs are renewed and the event is streamed. Returns
-- batch_completed's answer.
local function move(c, from, to, fields)
  if to == 'done' or to == 'failed' then
    count_rate(c, to)  -- before the fields: reject writes started_at in them
    count_minute(c.tenant, to, c.now)
    count_minute(c.metrics, to, c.now)
  end
  redis.call('HINCRBY', c.batch, from, -1)
  redis.call('HINCRBY', c.batch, to, 1)
  redis.call('HSET', c.image, 'state', to, unpack(fields))
  if to == 'done' or to == 'failed' or to == 'cancelled' then
    redis.call('HSET', c.image, 'finished_at', c.now)
    redis.call('HINCRBY', c.metrics, 'images:' .. to, 1)
    -- The tenant's outstanding images (its quota): every move into a final state leaves it.
    redis.call('HINCRBY', c.tenant, 'outstanding', -1)
  end
  track_running(c, to)
  local completed = batch_completed(c.batch, c.now, c.phases, c.batch_id, c.tenant, c.due)
  redis.call('EXPIRE', c.image, c.ttl)
  keep_batch(c.batch, c.images, c.rate, c.ttl)
  event(c.events, c.maxlen, c.batch_id, c.image_id, to)
  return completed
end

-- The image's state when it is one of the allowed ones, else nil and the refusal to return.
local function state_in(c, allowed)
  local state = redis.call('HGET', c.image, 'state')
  for _, ok in ipairs(allowed) do
    if state == ok then return state, nil end
  end
  return nil, {state or 'missing', 0}
end
