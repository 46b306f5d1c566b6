-- retry_dead.lua: give every dead task a fresh set of attempts.
-- KEYS: the job's keys (lib.lua)
-- ARGV: none
-- Returns {'missing'} | {'conflict', state} (cancelled) | {'ok', moved, state}
-- A completed or failed (over its max_dead budget) job with dead tasks runs
-- again; its finish webhook will fire again when it finishes again.
local job = load_job()
if not job then return {'missing'} end
if job.state == 'cancelled' then return {'conflict', job.state} end
local ids = redis.call('HKEYS', K_DEAD)
if #ids == 0 then return {'ok', 0, job.state} end
bulk('ZADD', K_PENDING, interleave(ids))  -- score = id
bulk('HDEL', K_FAILS, ids)
redis.call('DEL', K_DEAD)
if job.state == 'completed' or job.state == 'failed' then
  redis.call('HSET', K_META, 'state', 'running', 'finished_at', '')
  job.state = 'running'
  rearm_webhook()
end
return {'ok', #ids, job.state}
