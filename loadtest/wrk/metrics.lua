-- wrk -t1 -c50 -d20s -s loadtest/wrk/metrics.lua http://127.0.0.1:8080 -- 127.250.0.1
-- GET /metrics as one client: the address given after `--` goes in
-- X-Forwarded-For (the bench stack trusts 127.0.0.1 as a gateway), so each
-- flood of loadtest/metrics_flood.py is a client of its own, with a fresh
-- limit_req bucket, not the tail of the previous run's. Without a trusting
-- gateway nginx ignores the header and the flood comes from 127.0.0.1.
function init(args)
   req = wrk.format("GET", "/metrics", {["X-Forwarded-For"] = args[1] or "127.0.0.1"})
end

function request()
   return req
end
