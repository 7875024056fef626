-- KEYS: image, batch, events, metrics, rate. ARGV: new state, now, ttl, maxlen, batch, image,
-- rate bucket, number of record pairs, record field/value pairs..., metric field/increment pairs...
-- Returns {state now, completed}.
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
