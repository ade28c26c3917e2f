-- End to end: a real Prometheus server (Debian's prometheus package) scrapes /metrics of a
-- real 3-node cluster every second (with the nodes' HAPPY_SECRET, as its authorization sends it),
-- and its HTTP API answers the members-by-status query
-- with the right numbers: 3 online at each node, then, after one node is killed, 2 online and
-- 1 offline at each of the two left, and the killed one's target down.
--
-- Prometheus runs with a configuration this spec writes, its storage in a temporary folder,
-- listening on 127.0.0.1 only, for the length of the spec (stopped at its end, killed by the
-- cleanup if the spec fails). Skipped, saying so, where prometheus is not installed.

local cluster = require "support.cluster"
local cjson = require "cjson"
local url = require "socket.url"

local function have(program) return os.execute("command -v " .. program .. " >/dev/null 2>&1") == true end

-- The API's answer to an instant query: { [instance] = value }.
local function query(prometheus, expr)
  local status, answer = cluster.json("GET", prometheus .. "api/v1/query?query=" .. url.escape(expr))
  assert(status == 200, "query " .. expr .. " answered " .. tostring(status))
  assert(answer.status == "success", "query " .. expr .. ": " .. tostring(answer.error))
  local out = {}
  for _, r in ipairs(answer.data.result) do out[r.metric.instance] = tonumber(r.value[2]) end
  return out
end

-- Whether `got` has exactly the instances and values of `want`.
local function same(got, want)
  for k, v in pairs(want) do if got[k] ~= v then return false end end
  for k in pairs(got) do if want[k] == nil then return false end end
  return true
end

local function show(t)
  local parts = {}
  for k, v in pairs(t) do parts[#parts + 1] = k .. "=" .. tostring(v) end
  table.sort(parts)
  return "{" .. table.concat(parts, ", ") .. "}"
end

describe("a real Prometheus server", function()
  teardown(function() cluster.cleanup() end)

  it("scrapes a 3-node cluster and answers the members by status", function()
    if not have("prometheus") then
      print("# prometheus not found (Debian package prometheus): skipped")
      pending("prometheus is not installed")
      return
    end
    local dir = cluster.tempdir()
    local store = cluster.start_store(dir)
    local nodes, targets = {}, {}
    for i = 1, 3 do
      -- /metrics under a secret, as Prometheus's authorization sends it ("Bearer <credentials>").
      nodes[i] = cluster.start_node(store, { SHAZBOT_LOG_LEVEL = "warn", HAPPY_SECRET = "Bearer scrape-secret" })
      nodes[i].instance = "127.0.0.1:" .. nodes[i].port
      targets[i] = "'" .. nodes[i].instance .. "'"
    end
    cluster.wait_until(30, "the cluster to converge", function() return cluster.converged(nodes) end)
    assert.are.equal(401, (cluster.request("GET", nodes[1].url .. "metrics")))

    local port = cluster.free_port()
    local config = dir .. "/prometheus.yml"
    local f = assert(io.open(config, "w"))
    f:write(string.format([[
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: clustershazbot
    authorization: { credentials: scrape-secret }
    static_configs:
      - targets: [%s]
]], table.concat(targets, ", ")))
    f:close()
    local prometheus_proc = cluster.spawn_program("prometheus", table.concat({
      "--config.file=" .. config, "--storage.tsdb.path=" .. dir .. "/tsdb",
      "--storage.tsdb.retention.time=1h", "--web.listen-address=127.0.0.1:" .. port,
      "--log.level=warn" }, " "), {}, dir)
    local prometheus = string.format("http://127.0.0.1:%d/", port)
    cluster.wait_until(60, "Prometheus to be ready", function()
      if cluster.exit_status(prometheus_proc) then error("prometheus exited: " .. cluster.read_log(prometheus_proc)) end
      return cluster.request("GET", prometheus .. "-/ready") == 200
    end)

    local all_online, none = {}, {}
    for _, n in ipairs(nodes) do
      all_online[n.instance] = 3
      none[n.instance] = 0
    end
    local last
    cluster.wait_until(60, "Prometheus to see 3 online members at each node", function()
      last = query(prometheus, 'clustershazbot_members{status="online"}')
      return same(last, all_online)
    end)
    print("# online by instance: " .. show(last))
    assert.is_true(same(query(prometheus, 'clustershazbot_members{status="offline"}'), none))
    assert.is_true(same(query(prometheus, 'sum by (instance) (clustershazbot_members)'), all_online))
    assert.is_true(same(query(prometheus, 'clustershazbot_info{version="0.1.0"}'), { [nodes[1].instance] = 1,
      [nodes[2].instance] = 1, [nodes[3].instance] = 1 }))

    -- One node killed: the two left find it offline, Prometheus its target down.
    cluster.signal(nodes[3].proc, "KILL")
    local online_left = { [nodes[1].instance] = 2, [nodes[2].instance] = 2 }
    local offline_left = { [nodes[1].instance] = 1, [nodes[2].instance] = 1 }
    cluster.wait_until(90, "Prometheus to see 2 online and 1 offline at the nodes left", function()
      -- The killed node's last samples go stale once its target is down: only two answer.
      last = query(prometheus, 'clustershazbot_members{status="online"}')
      return same(last, online_left) and same(query(prometheus, 'clustershazbot_members{status="offline"}'), offline_left)
    end)
    print("# after the kill, online by instance: " .. show(last))
    cluster.wait_until(30, "the killed node's target down", function()
      return query(prometheus, 'up{job="clustershazbot"}')[nodes[3].instance] == 0
    end)

    cluster.signal(prometheus_proc, "TERM")
    cluster.wait_exit(prometheus_proc, 30)
  end)
end)
