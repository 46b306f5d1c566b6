-- append.lua: add items to an unsealed items job.
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 append token (made by the caller: a re-run with the same token adds
--       nothing twice), 2.. items (raw JSON)
-- Returns {'missing'} | {'sealed'} | {'closed', state} | {'ok', first new id, total}
local job = load_job()
if not job then return {'missing'} end
local token = ARGV[1]
local seen = redis.call('HGET', K_APPENDS, token)
if seen then return {'ok', tonumber(seen), job.total} end
if job.sealed then return {'sealed'} end
if job.state ~= 'running' and job.state ~= 'paused' then return {'closed', job.state} end
local first = job.total
store_items(first, 2)
local total = first + #ARGV - 1
redis.call('HSET', K_META, 'total', total)
redis.call('HSET', K_APPENDS, token, first)
return {'ok', first, total}
