-- complete: running -> done, with the stage timings (JSON), the output URI, and the timings'
-- histogram increments added to the metrics. An image whose record says review = '1' (its
-- matte is in doubt) is counted in the batch's review counter, so that views read one field.
-- ARGV after the shared ones: timings, output, then metric field/increment pairs.
local c = image_call()
local state, refused = state_in(c, {'running'})
if not state then return refused end
for i = 9, #ARGV, 2 do redis.call('HINCRBYFLOAT', c.metrics, ARGV[i], ARGV[i + 1]) end
local fields = {'stage', 'done', 'error', '', 'timings', ARGV[7], 'output', ARGV[8]}
local completed = move(c, 'running', 'done', fields)
if redis.call('HGET', c.image, 'review') == '1' then redis.call('HINCRBY', c.batch, 'review', 1) end
return {'done', completed}
