-- complete: running -> done, with the stage timings (JSON), the output URI, and the timings'
-- histogram increments added to the metrics.
-- ARGV after the shared ones: timings, output, then metric field/increment pairs.
local c = image_call()
local state, refused = state_in(c, {'running'})
if not state then return refused end
for i = 9, #ARGV, 2 do redis.call('HINCRBYFLOAT', c.metrics, ARGV[i], ARGV[i + 1]) end
local fields = {'stage', 'done', 'error', '', 'timings', ARGV[7], 'output', ARGV[8]}
return {'done', move(c, 'running', 'done', fields)}
