-- KEYS: image, batch, events, metrics. ARGV: max_deliveries, now, worker, ttl, maxlen, batch, image.
-- Returns {outcome, deliveries, completed}.
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
    'error', CANCELLED_REASON)
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
