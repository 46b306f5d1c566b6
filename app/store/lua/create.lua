-- create.lua: make a job (and, for an items job, store its first items).
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 name, 2 kind (range|items|staged), 3 start, 4 total (range and
--       staged jobs; items jobs count their items), 5 sealed (0|1), 6 batch_size,
--       7 lease_ms, 8 max_attempts, 9 priority, 10 params (raw JSON),
--       11 outbox (0 none, 1 archive, 2 result hook only: lib.lua), 12 m, then
--       m more meta field/value pairs (the optional settings: max_dead,
--       backoff_ms, batching, speculate, task_timeout, webhook...), then items
--       (raw JSON). 'staged': an items job whose items 0..total-1 stage.lua
--       already stored; they stop expiring.
-- Returns {'exists'} when the job is already there (a re-run is harmless),
--         else {'ok', state}; a sealed job with no task is completed at once.
if redis.call('EXISTS', K_META) == 1 then return {'exists'} end
local now = now_ms()
local kind = ARGV[2]
local total = tonumber(ARGV[4])
local first_item = 13 + 2 * tonumber(ARGV[12])
if kind == 'staged' then
  kind = 'items'
  redis.call('PERSIST', K_ITEMS)
elseif kind == 'items' then
  total = #ARGV - first_item + 1
  store_items(0, first_item)
end
local state, finished = 'running', ''
if ARGV[5] == '1' and total == 0 then state, finished = 'completed', now end
redis.call('HSET', K_META, 'name', ARGV[1], 'kind', kind, 'start', ARGV[3], 'total', total,
           'cursor', 0, 'sealed', ARGV[5], 'batch_size', ARGV[6], 'lease_ms', ARGV[7],
           'max_attempts', ARGV[8], 'priority', ARGV[9], 'params', ARGV[10],
           'state', state, 'created_at', now, 'finished_at', finished)
if first_item > 13 then redis.call('HSET', K_META, unpack(ARGV, 13, first_item - 1)) end
if ARGV[11] ~= '0' then  -- the drainers' consumer group (app/domain/drain.py)
  redis.call('HSET', K_META, 'outbox', ARGV[11], 'ndone', 0, 'archived', 0)
  redis.call('XGROUP', 'CREATE', K_OUTBOX, 'archive', '0', 'MKSTREAM')
end
return {'ok', state}
