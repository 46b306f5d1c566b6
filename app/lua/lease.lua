-- lease.lua: hand a batch of one job's tasks to a worker.
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 lease id (made by the caller; a re-run returns the same lease),
--       2 worker name, 3 max tasks (0: the job's batch_size),
--       4 reclaim limit, 5 any-job flag (0|1, kept for `complete ... next`)
-- Returns {'missing'} | {'done'} | {'wait', why, ms until the first lease expires} |
--         {'ok', lease id, expires ms, lease ms, id1, attempt1, payload1, ...}
local now = now_ms()
local job = load_job()
if not job then return {'missing'} end
reclaim(job, now, tonumber(ARGV[4]))
return do_lease(job, ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[5]), now)
