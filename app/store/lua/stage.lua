-- stage.lua: store one chunk of a large items create before its job exists
-- (create.lua with kind 'staged' then makes the job over them).
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 id of the chunk's first item, 2 seconds the staged items live
--       unless the create completes (a request that died half-way leaves
--       nothing for good), 3.. items (raw JSON)
-- Returns {'exists'} when the job is already there (nothing written), else {'ok', n}
if redis.call('EXISTS', K_META) == 1 then return {'exists'} end
store_items(tonumber(ARGV[1]), 3)
redis.call('EXPIRE', K_ITEMS, tonumber(ARGV[2]))
return {'ok', #ARGV - 2}
