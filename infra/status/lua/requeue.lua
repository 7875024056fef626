-- requeue: running -> queued, for a transient failure whose message is retried later.
-- ARGV after the shared ones: error, retries so far.
local c = image_call()
local state, refused = state_in(c, {'running'})
if not state then return refused end
local fields = {'stage', 'queued', 'error', ARGV[7], 'retries', ARGV[8]}
return {'queued', move(c, 'running', 'queued', fields)}
