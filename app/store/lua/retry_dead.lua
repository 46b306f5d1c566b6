-- retry_dead.lua: give dead tasks (all of them, or one) a fresh set of attempts.
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 task id ('' or absent: every dead task)
-- Returns {'missing'} | {'conflict', state} (cancelled) | {'not_dead'} (that task
--         is not dead: nothing changed) | {'ok', moved, state}
-- A completed or failed (over its max_dead budget) job with dead tasks runs
-- again; its finish webhook will fire again when it finishes again.
local job = load_job()
if not job then return {'missing'} end
if job.state == 'cancelled' then return {'conflict', job.state} end
local ids
if ARGV[1] and ARGV[1] ~= '' then
  if redis.call('HEXISTS', K_DEAD, ARGV[1]) == 0 then return {'not_dead'} end
  ids = {ARGV[1]}
  redis.call('HDEL', K_DEAD, ARGV[1])
else
  ids = redis.call('HKEYS', K_DEAD)
  if #ids == 0 then return {'ok', 0, job.state} end
  redis.call('DEL', K_DEAD)
end
bulk('ZADD', K_PENDING, interleave(ids))  -- score = id
bulk('HDEL', K_FAILS, ids)
if job.state == 'completed' or job.state == 'failed' then
  redis.call('HSET', K_META, 'state', 'running', 'finished_at', '')
  job.state = 'running'
  rearm_webhook()
end
return {'ok', #ids, job.state}
