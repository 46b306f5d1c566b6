-- token_issue.lua: store a new per-job worker token (only its SHA-256).
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 the token's SHA-256 (hex), 2 lifetime in ms
-- Returns {'missing'} | {'ok', expires ms of Redis TIME}
-- In one step with the job's existence: a token is never stored for a job
-- deleted meanwhile (delete.lua unlinks the tokens with the job).
if redis.call('EXISTS', K_META) == 0 then return {'missing'} end
local expires = now_ms() + tonumber(ARGV[2])
redis.call('HSET', K_TOKENS, ARGV[1], expires)
return {'ok', expires}
