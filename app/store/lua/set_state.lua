-- set_state.lua: pause, resume or cancel a job.
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 action (pause|resume|cancel)
-- Returns {'missing'} | {'ok', state} | {'conflict', state} (a finished job
-- cannot be paused, resumed or cancelled; repeating an action is fine).
local ALLOWED = {
  pause = {running = 'paused', paused = 'paused'},
  resume = {paused = 'running', running = 'running'},
  cancel = {running = 'cancelled', paused = 'cancelled', cancelled = 'cancelled'},
}
local now = now_ms()
local job = load_job()
if not job then return {'missing'} end
maybe_complete(job, now)
local to = ALLOWED[ARGV[1]][job.state]
if not to then return {'conflict', job.state} end
if to ~= job.state then
  redis.call('HSET', K_META, 'state', to)
  if to == 'cancelled' then redis.call('HSET', K_META, 'finished_at', now) end
end
return {'ok', to}
