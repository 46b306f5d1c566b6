-- wrk -t1 -c64 -d10s -s loadtest/wrk/healthz.lua http://127.0.0.1:8080
-- GET /healthz through the same nginx -> uWSGI path as the API.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local C = dofile(dir .. "common.lua")

n = 0
non200 = 0
token = os.getenv("JOBMASTER_TOKEN")

function setup(thread) C.setup(thread) end

function request()
   n = n + 1
   local h = {["X-Forwarded-For"] = C.spread_ip(tid * 100003 + n)}
   return wrk.format("GET", "/healthz", h)
end

function response(status, headers, body)
   if status ~= 200 then non200 = non200 + 1 end
end

function done(summary, latency, requests)
   C.report({"n", "non200"})
end
