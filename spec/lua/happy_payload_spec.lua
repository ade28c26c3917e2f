-- The /happy payload of a real node, field by field against the types PROTOCOL.md gives
-- ("Health payload", happy-server's HappyServerResponse): running a boolean,
-- plannedShutdownIn a number of seconds or null, the four current* figures numbers that may
-- be fractional (means over the last 10 complete seconds, and over the last 3 complete
-- minutes), extensionFailures an array of strings, extensions an object of named entries,
-- trackedValues an object, in /happy/quick too. While the node leaves, plannedShutdownIn
-- counts down and, in those last seconds, /happy answers 503 as happy-server does.
--
-- The JSON is read with dkjson, which tells an array from an object (cjson reads [] as {}).

local cluster = require "support.cluster"
local json = require "dkjson"
local socket = require "socket"

local function now_ms() return math.floor(socket.gettime() * 1000) end

local function kind(v)
  if v == json.null then return "null" end
  local t = type(v)
  if t == "table" then
    local meta = getmetatable(v)
    return meta and meta.__jsontype or "object"
  end
  return t
end

-- status, decoded payload
local function get(url)
  local status, text = cluster.request("GET", url)
  assert(status, "no answer from " .. url .. ": " .. tostring(text))
  local value, _, err = json.decode(text, 1, json.null)
  assert(value, "not JSON (" .. tostring(err) .. "): " .. text)
  return status, value
end

local function check_record(r, where)
  assert.are.equal("object", kind(r), where)
  assert.are.equal("string", kind(r.baseUrl), where .. ".baseUrl")
  assert.are.equal("boolean", kind(r.monitor), where .. ".monitor")
  assert.are.equal("integer", math.type(r.lastUpdate), where .. ".lastUpdate")
end

local function check_failures(list, where)
  assert.are.equal("array", kind(list), where)
  for i, name in ipairs(list) do assert.are.equal("string", kind(name), where .. "[" .. i .. "]") end
end

local FIGURES = { "currentReqPerSec", "currentReqPerMin", "currentFailsPerMin", "currentErrPerMin" }

local function check_figures(p)
  for _, name in ipairs(FIGURES) do assert.are.equal("number", kind(p[name]), name) end
end

local function check_tracked(p)
  assert.are.equal("object", kind(p.trackedValues), "trackedValues")
  for k, v in pairs(p.trackedValues) do assert.are.equal("number", kind(v), "trackedValues." .. k) end
end

-- Every field of /happy, of the type PROTOCOL.md gives; nothing else at the top.
local function check_happy(p)
  assert.are.equal("object", kind(p))
  local allowed = { running = true, plannedShutdownIn = true, extensionFailures = true, extensions = true,
                    trackedValues = true }
  for _, name in ipairs(FIGURES) do allowed[name] = true end
  for k in pairs(p) do assert.is_true(allowed[k] or false, "unexpected field " .. k) end
  for k in pairs(allowed) do assert.is_not_nil(p[k], "missing field " .. k) end
  assert.are.equal("boolean", kind(p.running), "running")
  local planned = kind(p.plannedShutdownIn)
  assert.is_true(planned == "null" or planned == "number", "plannedShutdownIn is " .. planned)
  check_figures(p)
  check_failures(p.extensionFailures, "extensionFailures")
  check_tracked(p)
  assert.are.equal("object", kind(p.extensions), "extensions")
  for name, entry in pairs(p.extensions) do assert.are.equal("object", kind(entry), "extensions." .. name) end
  local entry = p.extensions.clustershazbot
  assert.is_true(entry.status == "ok" or entry.status == "error", tostring(entry.status))
  if entry.status == "ok" then
    for _, list in ipairs({ "online", "offline" }) do
      assert.are.equal("array", kind(entry.cluster[list]), "cluster." .. list)
      for i, r in ipairs(entry.cluster[list]) do check_record(r, list .. "[" .. i .. "]") end
    end
    for _, count in ipairs({ "skippedEntries", "refutations", "policyFailures" }) do
      assert.are.equal("integer", math.type(entry[count]), count)
    end
  else
    assert.are.equal("string", kind(entry.error), "error")
  end
end

local function check_quick(p)
  assert.are.equal("object", kind(p))
  local n = 0
  for _ in pairs(p) do n = n + 1 end
  assert.are.equal(6, n, "the four figures, extensionFailures and trackedValues")
  check_figures(p)
  check_failures(p.extensionFailures, "extensionFailures")
  check_tracked(p)
end

-- A multiple of 1/n, as a mean of n whole counts is.
local function mean_of(n, v) return math.abs(v * n - math.floor(v * n + 0.5)) < 1e-6 end

describe("/happy", function()
  teardown(function() cluster.cleanup() end)

  it("has every field of happy-server's payload, of its type, and figures that are means", function()
    local store = cluster.start_store()
    local node = cluster.start_node(store, { SHAZBOT_LOG_LEVEL = "warn" })
    local peer = cluster.start_node(store, { SHAZBOT_LOG_LEVEL = "warn" })
    cluster.wait_until(20, "two nodes to converge", function() return cluster.converged({ node, peer }) end)
    local status, p = get(node.url .. "happy")
    assert.are.equal(200, status)
    check_happy(p)
    assert.is_true(p.running)
    assert.are.equal("null", kind(p.plannedShutdownIn))
    assert.are.same({}, p.extensionFailures)
    assert.are.equal(2, p.trackedValues.membersOnline)
    assert.are.equal(0, p.trackedValues.membersOffline)
    status, p = get(node.url .. "happy/quick")
    assert.are.equal(200, status)
    check_quick(p)

    -- 30 requests in a burst: the per-second figure is their mean over 10 seconds, the
    -- per-minute one over 3 minutes (and the gossip of the peer, and these polls, besides).
    for _ = 1, 30 do assert.are.equal(200, (cluster.request("GET", node.url .. "clustershazbot/list"))) end
    local figures = cluster.wait_until(10, "the burst in the figures", function()
      local _, q = get(node.url .. "happy/quick")
      return q.currentReqPerSec >= 3 and q
    end)
    print(string.format("# after a burst of 30: currentReqPerSec %s, currentReqPerMin %s",
      figures.currentReqPerSec, figures.currentReqPerMin))
    assert.is_true(mean_of(10, figures.currentReqPerSec), tostring(figures.currentReqPerSec))
    assert.is_true(mean_of(3, figures.currentReqPerMin), tostring(figures.currentReqPerMin))
    assert.is_true(figures.currentReqPerMin >= 30 / 3)
    -- The 180 seconds of the per-minute figure hold the 10 of the per-second one.
    assert.is_true(figures.currentReqPerMin * 3 >= figures.currentReqPerSec * 10)
    -- Refused requests are fails (4xx).
    for _ = 1, 6 do assert.are.equal(401, (cluster.request("POST", node.url .. "clustershazbot/gossip", "{}"))) end
    figures = cluster.wait_until(5, "the refusals in the figures", function()
      local _, q = get(node.url .. "happy/quick")
      return q.currentFailsPerMin >= 2 and q
    end)
    assert.is_true(mean_of(3, figures.currentFailsPerMin))
    assert.are.equal(0, figures.currentErrPerMin)
  end)

  it("is the same shape when a user's health hook fails and the default answers", function()
    local node = cluster.start_node(nil, { SHAZBOT_POLICY = "spec/lua/fixtures/broken_health_policy.lua",
                                           SHAZBOT_LOG_LEVEL = "error" })
    for _ = 1, 3 do
      local status, p = get(node.url .. "happy")
      assert.are.equal(200, status)
      check_happy(p)
    end
  end)

  it("counts plannedShutdownIn down while the node leaves, answering 503 in those last seconds", function()
    -- A peer that takes connections and never answers: the goodbye to it lasts until its
    -- timeout (5 s at a 5 s interval), so the leave is long enough to watch.
    local silent = assert(socket.bind("127.0.0.1", cluster.free_port()))
    local _, silent_port = silent:getsockname()
    local node = cluster.start_node(nil, { SHAZBOT_GOSSIP_INTERVAL = "5", SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "3600" })
    local silent_url = string.format("http://127.0.0.1:%d/", silent_port)
    local body = cluster.gossip_body({ { baseUrl = silent_url, monitor = false, lastUpdate = now_ms() } })
    assert.are.equal(200, (cluster.request("POST", node.url .. "clustershazbot/gossip", body,
      { Authorization = cluster.secret })))
    local status, p = get(node.url .. "happy")
    assert.are.equal(200, status)
    assert.are.equal("null", kind(p.plannedShutdownIn))

    cluster.signal(node.proc, "TERM")
    local samples = {}
    cluster.wait_until(20, "the node to stop", function()
      -- When the node wrote the figure lies between the request's start and its answer.
      local asked = cluster.now()
      local ok, s, payload = pcall(get, node.url .. "happy")
      local answered = cluster.now()
      if ok then
        check_happy(payload)
        if payload.plannedShutdownIn ~= json.null then
          samples[#samples + 1] = { status = s, left = payload.plannedShutdownIn, at = (asked + answered) / 2,
                                    within = (answered - asked) / 2 }
          local q_status, quick = get(node.url .. "happy/quick")
          check_quick(quick)
          assert.are.equal(503, q_status)
        end
      end
      cluster.sleep(0.3)
      return cluster.exit_status(node.proc) ~= nil
    end)
    silent:close()
    assert.are.equal(0, cluster.exit_status(node.proc))
    local shown = {}
    for i, s in ipairs(samples) do shown[i] = string.format("%d %.3f", s.status, s.left) end
    print("# during the leave: " .. table.concat(shown, ", "))
    assert.is_true(#samples >= 3, "too few samples during the leave: " .. #samples)
    for i, s in ipairs(samples) do
      assert.are.equal(503, s.status) -- the whole leave lies within the last 10 s
      assert.is_true(s.left >= 0 and s.left <= 6, tostring(s.left))
      if i > 1 then
        local prev = samples[i - 1]
        assert.is_true(s.left < prev.left, "not counting down: " .. table.concat(shown, ", "))
        -- Down by the time that passed between the two answers, as far as our clock can tell
        -- when each was written (and to the millisecond the node gives).
        local slack = prev.within + s.within + 0.01
        assert.is_true(math.abs((prev.left - s.left) - (s.at - prev.at)) <= slack, table.concat(shown, ", "))
      end
    end
  end)
end)
