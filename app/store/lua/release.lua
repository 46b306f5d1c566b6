-- release.lua: give every unfinished task of a lease back to pending now
-- (a pod's SIGTERM / preStop). A release is not a failed attempt.
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 lease id
-- Returns {'missing'} | {'ok', tasks released} (0 for a lease already gone)
local now = now_ms()
local job = load_job()
if not job then return {'missing'} end
return {'ok', return_lease(job, ARGV[1], now, false)}
