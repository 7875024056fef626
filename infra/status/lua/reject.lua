-- reject: queued | running -> failed in one step, for a message that breaks the job contract
-- (it is never run, so it is failed wherever it is). It counts as a delivery.
-- ARGV after the shared ones: error, worker.
local c = image_call()
local state, refused = state_in(c, {'queued', 'running'})
if not state then return refused end
redis.call('HINCRBY', c.image, 'deliveries', 1)
batch_started(c)
local fields = {'stage', 'failed', 'error', ARGV[7], 'worker', ARGV[8], 'started_at', c.now}
return {'failed', move(c, state, 'failed', fields)}
