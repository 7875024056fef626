-- fail: running -> failed, with the reason. ARGV after the shared ones: error.
local c = image_call()
local state, refused = state_in(c, {'running'})
if not state then return refused end
return {'failed', move(c, 'running', 'failed', {'stage', 'failed', 'error', ARGV[7]})}
