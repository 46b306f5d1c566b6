-- fleet.lua: record or forget the launches of a job's worker fleet (docs/contract.md §10).
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 'save' | 'drop', 2 launch ref, 3 record (JSON; save only)
-- Returns {'missing'} | {'conflict', state} (save on a completed or cancelled
--         job: nothing is recorded, the caller stops what it started) | {'ok', state}
-- The record lives beside the job so that any app instance can answer
-- GET and DELETE .../fleet, and deleting the job forgets it.
local job = load_job()
if not job then return {'missing'} end
if ARGV[1] == 'save' then
  if job.state ~= 'running' and job.state ~= 'paused' then return {'conflict', job.state} end
  redis.call('HSET', K_FLEET, ARGV[2], ARGV[3])
else
  redis.call('HDEL', K_FLEET, ARGV[2])
end
return {'ok', job.state}
