-- cancel (a batch): sets the batch's cancel flag and moves the given images that are still
-- queued to cancelled; running ones finish (and start refuses queued ones from now on).
-- KEYS: batch, its image list, its rate buckets, events, metrics, the tenant's counters, the
-- four phase sets, the due webhooks, then image keys... ARGV: now, ttl, events maxlen, batch id,
-- then image ids... (ARGV[4 + i] names KEYS[11 + i]).
-- Returns {moved, completed}, or {-1, 0} when there is no such batch.
if redis.call('HEXISTS', KEYS[1], 'total') == 0 then return {-1, 0} end
local now = ARGV[1]
local phases = phase_keys(7)
if redis.call('HSETNX', KEYS[1], 'cancelled_at', now) == 1 then
  set_phase(phases, KEYS[1], ARGV[4], 'cancelled')
end
local moved = 0
for i = 12, #KEYS do
  if redis.call('HGET', KEYS[i], 'state') == 'queued' then
    redis.call('HSET', KEYS[i], 'state', 'cancelled', 'stage', 'cancelled', 'finished_at', now,
      'error', CANCELLED_REASON)
    event(KEYS[4], ARGV[3], ARGV[4], ARGV[i - 7], 'cancelled')
    moved = moved + 1
  end
end
if moved > 0 then
  redis.call('HINCRBY', KEYS[1], 'queued', -moved)
  redis.call('HINCRBY', KEYS[1], 'cancelled', moved)
  redis.call('HINCRBY', KEYS[5], 'images:cancelled', moved)
  redis.call('HINCRBY', KEYS[6], 'outstanding', -moved)
end
local completed = batch_completed(KEYS[1], now, phases, ARGV[4], KEYS[6], KEYS[11])
keep_batch(KEYS[1], KEYS[2], KEYS[3], ARGV[2])
return {moved, completed}
