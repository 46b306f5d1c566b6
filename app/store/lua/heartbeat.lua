-- heartbeat.lua: extend a live lease (every task it still holds).
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 lease id, 2 new lease length in ms (0: the job's lease_seconds),
--       3 reclaim limit, 4 longest lease in ms (MAX_LEASE_SECONDS)
-- Returns {'missing'} | {'lost'} (expired: its tasks were given back, now or
--         before; or never a lease) | {'ok', expires ms, job state}
-- A heartbeat asks for at most the job's own lease length (and never more
-- than the server's longest lease): a worker cannot pin its tasks for longer
-- than the job's owner allowed one lease to last.
local now = now_ms()
local job = load_job()
if not job then return {'missing'} end
local lid = ARGV[1]
local deadline = tonumber(redis.call('ZSCORE', K_DEADLINES, lid))
if not deadline then return {'lost'} end
if deadline <= now then
  -- Past its deadline is lost, even if nobody reclaimed it yet: a lease is
  -- never revived, so no task can be held by two live leases.
  return_lease(job, lid, now, true)
  maybe_complete(job, now)
  return {'lost'}
end
local ms = tonumber(ARGV[2])
if ms <= 0 or ms > job.lease_ms then ms = job.lease_ms end
ms = math.min(ms, tonumber(ARGV[4]))
local expires = now + ms
redis.call('ZADD', K_DEADLINES, expires, lid)
local raw = redis.call('HGET', K_LEASES, lid)
if raw then touch_worker(decode_lease(raw).w, now, 0, 0, 0, true) end
reclaim(job, now, tonumber(ARGV[3]))
return {'ok', expires, job.state}
