-- series.lua: a job's throughput over time (read only).
-- KEYS: the job's keys (lib.lua)
-- ARGV: 1 'recent' | 'points', 2 (points) resolution prefix 's' | 'm' | '' (the
--       fine one while it reaches back to the first activity, else the coarse one)
-- Returns {'missing'} |
--   recent: {'ok', now ms, t0 ms or -1, done, failed, from ms}: the tasks done
--           and attempts failed in the 10 s buckets of about the last minute,
--           counted from `from` (the first of those buckets, or t0 if later)
--   points: {'ok', now ms, t0 ms or -1, prefix, bucket ms, first bucket index,
--            d1, f1, d2, f2, ...}
--           every bucket from the first kept one to the current one (gaps are 0)
local now = now_ms()
if redis.call('EXISTS', K_META) == 0 then return {'missing'} end
local t0 = tonumber(redis.call('HGET', K_SERIES, 't0')) or -1
local spec = {}
for _, s in ipairs(SERIES) do spec[s[1]] = {s[2], s[3]} end  -- lib.lua's resolutions
if ARGV[1] == 'recent' then
  local width = spec.s[1]
  local b = math.floor(now / width)
  local fields = {}
  for t = b - 5, b do
    fields[#fields + 1] = fmt('s%dd', t)
    fields[#fields + 1] = fmt('s%df', t)
  end
  local v = redis.call('HMGET', K_SERIES, unpack(fields))
  local done, failed = 0, 0
  for i = 1, #v, 2 do
    done = done + (tonumber(v[i]) or 0)
    failed = failed + (tonumber(v[i + 1]) or 0)
  end
  return {'ok', now, t0, done, failed, math.max((b - 5) * width, t0)}
end
local p = ARGV[2]
if p == '' then
  p = 's'
  if t0 >= 0 and math.floor(t0 / spec.s[1]) <= math.floor(now / spec.s[1]) - spec.s[2] then p = 'm' end
end
local width, keep = spec[p][1], spec[p][2]
local b = math.floor(now / width)
local first = b - keep + 1
if t0 >= 0 then first = math.max(first, math.floor(t0 / width)) else first = b end
local fields = {}
for t = first, b do
  fields[#fields + 1] = fmt('%s%dd', p, t)
  fields[#fields + 1] = fmt('%s%df', p, t)
end
local v = redis.call('HMGET', K_SERIES, unpack(fields))
local reply = {'ok', now, t0, p, width, first}
for i = 1, #v do reply[#reply + 1] = tonumber(v[i]) or 0 end
return reply
