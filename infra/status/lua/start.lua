-- start: queued -> running (a redelivery of a running image stays running and counts again).
-- Also: queued -> cancelled when the batch is cancelled, queued | running -> failed ('poison')
-- past max_deliveries. Any other state is left alone and returned (a late duplicate message).
-- ARGV after the shared ones: max_deliveries, worker. Returns {outcome, deliveries, completed}.
local c = image_call()
local state, refused = state_in(c, {'queued', 'running'})
if not state then return {refused[1], 0, 0} end
if state == 'queued' and redis.call('HEXISTS', c.batch, 'cancelled_at') == 1 then
  local fields = {'stage', 'cancelled', 'error', CANCELLED_REASON}
  return {'cancelled', 0, move(c, 'queued', 'cancelled', fields)}
end
local deliveries = redis.call('HINCRBY', c.image, 'deliveries', 1)
if deliveries > tonumber(ARGV[7]) then
  local reason = 'poison: delivered ' .. deliveries .. ' times without finishing'
  return {'poison', deliveries, move(c, state, 'failed', {'error', reason})}
end
batch_started(c)
local fields = {'started_at', c.now, 'worker', ARGV[8], 'stage', 'queued'}
return {'running', deliveries, move(c, state, 'running', fields)}
