-- token_check.lua: is a per-job worker token live? An expired one is dropped.
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 the token's SHA-256 (hex)
-- Returns {'ok'} | {'unknown'} (never issued, revoked, expired, or its job is gone)
-- One round trip per request that shows such a token, its expiry judged by
-- Redis TIME like every deadline.
local expires = tonumber(redis.call('HGET', K_TOKENS, ARGV[1]))
if not expires then return {'unknown'} end
if expires <= now_ms() then
  redis.call('HDEL', K_TOKENS, ARGV[1])
  return {'unknown'}
end
return {'ok'}
