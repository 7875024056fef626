-- start: queued -> running (a redelivery of a running image stays running and counts again).
-- Also: queued -> cancelled when the batch is cancelled, queued | running -> failed ('poison')
-- past max_deliveries. Any other state is left alone and returned (a late duplicate message).
-- ARGV after the shared ones: max_deliveries, worker.
-- Returns {outcome, deliveries, completed, the batch's created_at}: a worker that caches what the
-- batch's jobs share knows from created_at whether the batch is still the one it read.
local c = image_call()
local created = redis.call('HGET', c.batch, 'created_at') or ''
local state, refused = state_in(c, {'queued', 'running'})
if not state then return {refused[1], 0, 0, created} end
if state == 'queued' and redis.call('HEXISTS', c.batch, 'cancelled_at') == 1 then
  local fields = {'stage', 'cancelled', 'error', CANCELLED_REASON}
  return {'cancelled', 0, move(c, 'queued', 'cancelled', fields), created}
end
local deliveries = redis.call('HINCRBY', c.image, 'deliveries', 1)
if deliveries > tonumber(ARGV[7]) then
  local reason = 'poison: delivered ' .. deliveries .. ' times without finishing'
  return {'poison', deliveries, move(c, state, 'failed', {'error', reason}), created}
end
batch_started(c)
local fields = {'started_at', c.now, 'worker', ARGV[8], 'stage', 'queued'}
return {'running', deliveries, move(c, state, 'running', fields), created}
