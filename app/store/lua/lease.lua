-- lease.lua: hand batches of one job's tasks to one or more lease requests
-- (an app process combines the requests for a job that arrive together).
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 reclaim limit, then 4 per request:
--       lease id (made by the caller; a re-run returns the same lease),
--       worker name, max tasks (0: the job's batch_size),
--       any-job flag (0|1, kept for `complete ... next`)
-- Returns {'missing'} | one reply per request, in order, each
--         {'done'} | {'wait', why, ms until the first lease expires} |
--         {'ok', lease id, expires ms, lease ms, n, id1..idn, attempt1..attemptn,
--          [payload1..payloadn for items jobs]} |
--         {'span', lease id, expires ms, lease ms, n, first id} (a range job's
--          fresh ids first..first+n-1, all first attempts)
local now = now_ms()
local job = load_job()
if not job then return {'missing'} end
reclaim(job, now, tonumber(ARGV[1]))
local reqs = {}
for i = 2, #ARGV, 4 do
  reqs[#reqs + 1] = {lid = ARGV[i], worker = ARGV[i + 1], max = tonumber(ARGV[i + 2]),
                     any = tonumber(ARGV[i + 3])}
end
return do_leases(job, reqs, now)
