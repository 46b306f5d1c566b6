-- seal.lua: declare that no more items will come; the job may now complete.
-- KEYS: the job's keys (lib.lua)
-- ARGV: none
-- Returns {'missing'} | {'ok', state}
local job = load_job()
if not job then return {'missing'} end
if not job.sealed then
  redis.call('HSET', K_META, 'sealed', 1)
  job.sealed = true
end
maybe_complete(job, now_ms())
return {'ok', job.state}
