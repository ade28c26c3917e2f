-- wrk script: POST the gossip body in $BODY_FILE with the gossip secret in $SECRET.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("SECRET")

-- One parseable line for gossip_bench.sh.
function done(summary, latency, requests)
  io.write(string.format("RESULT %.0f %.2f %d %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(99) / 1000, summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, summary.requests))
end
