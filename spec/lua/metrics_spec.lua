-- GET /metrics of a real node: Prometheus's text format, checked by `promtool check metrics`
-- (Debian's prometheus package) at every step, and the figures after events this spec causes
-- itself: a cluster of two formed, records skipped, a refutation, a peer killed and found
-- offline, failing policy hooks, refused requests. Without promtool the format checks are
-- skipped, the figures still checked.

local cluster = require "support.cluster"
local socket = require "socket"

local function now_ms() return math.floor(socket.gettime() * 1000) end

local function have(program) return os.execute("command -v " .. program .. " >/dev/null 2>&1") == true end
local PROMTOOL = have("promtool")

-- The text of /metrics, after checking its status and Content-Type.
local function scrape(node)
  local status, text, headers = cluster.request("GET", node.url .. "metrics")
  assert(status == 200, "/metrics answered " .. tostring(status) .. ": " .. tostring(text))
  assert.are.equal("text/plain; version=0.0.4; charset=utf-8", headers["content-type"])
  return text
end

-- `promtool check metrics` on the text: its exit status and what it said (nothing when fine).
local function promtool(text)
  local path = cluster.tempdir() .. "/metrics.txt"
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  local p = io.popen("promtool check metrics < '" .. path .. "' 2>&1; echo \"exit $?\"")
  local out = p:read("a")
  p:close()
  return out
end

local function assert_valid(text)
  if not PROMTOOL then return end
  local out = promtool(text)
  assert.are.equal("exit 0\n", out, out)
end

-- { ["name{labels}"] = value }, every sample of the text.
local function samples(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, 1) ~= "#" then
      local key, value = line:match("^(%S+) (%S+)$")
      assert(key, "not a sample line: " .. line)
      assert(out[key] == nil, "sample twice: " .. key)
      out[key] = tonumber(value) or (value == "+Inf" and math.huge) or error("not a number: " .. line)
    end
  end
  return out
end

local function metrics(node) return samples(scrape(node)) end

local function post_gossip(node, body)
  return cluster.request("POST", node.url .. "clustershazbot/gossip", body, { Authorization = cluster.secret })
end

describe("GET /metrics", function()
  teardown(function() cluster.cleanup() end)

  if not PROMTOOL then
    print("# promtool not found (Debian package prometheus): the format checks are skipped")
  end

  it("is valid exposition text whose figures follow what the node went through", function()
    local store = cluster.start_store()
    local a = cluster.start_node(store, { SHAZBOT_LOG_LEVEL = "warn" })
    local b = cluster.start_node(store, { SHAZBOT_LOG_LEVEL = "warn" })
    cluster.wait_until(20, "the two nodes to converge", function() return cluster.converged({ a, b }) end)

    local text = scrape(a)
    assert_valid(text)
    local m = samples(text)
    assert.are.equal(1, m['clustershazbot_info{version="0.1.0"}'])
    assert.are.equal(1, m.clustershazbot_running)
    assert.are.equal(0, m.clustershazbot_leaving)
    assert.are.equal(2, m['clustershazbot_members{status="online"}'])
    assert.are.equal(0, m['clustershazbot_members{status="offline"}'])
    assert.are.equal(2, m.clustershazbot_state_records)
    assert.is_true(m.clustershazbot_state_bytes > 2 * #a.url)
    assert.are.equal(1, m['clustershazbot_master_list_fetches_total{result="ok"}'])
    assert.are.equal(1, m['clustershazbot_transfers_total{kind="master_list",result="ok"}'])
    -- Each family once, with its HELP and TYPE; every counter ends in _total.
    for name, kind in text:gmatch("# TYPE (%S+) (%S+)\n") do
      if kind == "counter" then assert.truthy(name:find("_total$"), name) end
      assert.truthy(name:find("^clustershazbot_"), name)
    end

    -- Rounds: the nodes gossip every second; each answered round is counted, with its
    -- duration, and so are its transfers and their bytes.
    local before = metrics(a)
    cluster.wait_until(20, "two more answered rounds", function()
      return metrics(a)['clustershazbot_gossip_rounds_total{result="ok"}'] >=
             before['clustershazbot_gossip_rounds_total{result="ok"}'] + 2
    end)
    m = metrics(a)
    local rounds = 0
    for key, v in pairs(m) do
      if key:find('^clustershazbot_gossip_rounds_total{result="') and key ~= 'clustershazbot_gossip_rounds_total{result="no_peer"}' then
        rounds = rounds + v
      end
    end
    assert.are.equal(rounds, m.clustershazbot_gossip_round_duration_seconds_count)
    assert.are.equal(rounds, m['clustershazbot_gossip_round_duration_seconds_bucket{le="+Inf"}'])
    assert.is_true(m['clustershazbot_gossip_round_duration_seconds_bucket{le="0.005"}'] <=
                   m['clustershazbot_gossip_round_duration_seconds_bucket{le="10"}'])
    assert.is_true(m['clustershazbot_transfers_total{kind="round",result="ok"}'] >= 2)
    assert.is_true(m['clustershazbot_transfer_bytes_total{direction="sent"}'] > 0)
    assert.is_true(m['clustershazbot_transfer_bytes_total{direction="received"}'] > 0)

    -- Skipped records, by reason: one message with a bad URL, a future lastUpdate, a string
    -- lastUpdate; the good record in it is merged.
    before = metrics(a)
    local body = cluster.gossip_body({
      { baseUrl = "not a url", monitor = false, lastUpdate = now_ms() },
      { baseUrl = "http://127.0.0.1:9/", monitor = false, lastUpdate = now_ms() + 3600 * 1000 },
      { baseUrl = "http://127.0.0.1:10/", monitor = false, lastUpdate = "soon" },
    })
    assert.are.equal(200, (post_gossip(a, body)))
    m = metrics(a)
    for reason, n in pairs({ url = 1, future = 1, time = 1, expired = 0 }) do
      local key = 'clustershazbot_skipped_entries_total{reason="' .. reason .. '"}'
      assert.are.equal(before[key] + n, m[key], key)
    end

    -- A refutation: a peer says this node is offline, newer than its own record.
    local refutations = m.clustershazbot_refutations_total
    body = cluster.gossip_body({}, { { baseUrl = a.url, monitor = false, lastUpdate = now_ms() + 1000 } })
    assert.are.equal(200, (post_gossip(a, body)))
    assert.are.equal(refutations + 1, metrics(a).clustershazbot_refutations_total)

    -- Answers by class: a refused gossip request is a 4xx.
    local refused = metrics(a)['clustershazbot_http_responses_total{code="4xx"}']
    assert.are.equal(401, (cluster.request("POST", a.url .. "clustershazbot/gossip", "{}", { Authorization = "no" })))
    assert.are.equal(refused + 1, metrics(a)['clustershazbot_http_responses_total{code="4xx"}'])

    -- A peer killed: the rounds to it fail twice, it is moved offline.
    cluster.signal(b.proc, "KILL")
    cluster.wait_until(30, "the killed peer offline in the metrics", function()
      return metrics(a)['clustershazbot_members{status="offline"}'] == 1
    end)
    text = scrape(a)
    assert_valid(text)
    m = samples(text)
    assert.are.equal(1, m['clustershazbot_members{status="online"}'])
    -- Moved offline by this node's own verdict (nobody else is left to claim it): at the end
    -- of a round, or once a round that spared it (news of it was fresh) was looked at again.
    assert.are.equal(1, m.clustershazbot_peers_failed_total)
    assert.is_true(m['clustershazbot_gossip_rounds_total{result="peer_offline"}'] +
                   m['clustershazbot_gossip_rounds_total{result="spared"}'] >= 1)
    assert.is_true(m['clustershazbot_transfers_total{kind="round",result="failed"}'] >= 1)
    assert.is_true(m['clustershazbot_transfers_total{kind="retry",result="failed"}'] >= 1)
    -- Alone now: its rounds have no peer.
    local lonely = m['clustershazbot_gossip_rounds_total{result="no_peer"}']
    cluster.wait_until(10, "a round without a peer", function()
      return metrics(a)['clustershazbot_gossip_rounds_total{result="no_peer"}'] > lonely
    end)
    -- Announcements go on (every second in the test support's settings).
    assert.is_true(metrics(a)['clustershazbot_master_list_announcements_total{result="ok"}'] >= 1)
  end)

  it("counts policy failures by hook", function()
    local dir = cluster.tempdir()
    local script = dir .. "/failing_delay.lua"
    local f = assert(io.open(script, "w"))
    f:write("return { gossip_delay = function() error('no delay today') end,\n" ..
            "         health_checks = function() return 'not a table' end }\n")
    f:close()
    local node = cluster.start_node(nil, { SHAZBOT_POLICY = script, SHAZBOT_LOG_LEVEL = "error" })
    -- The delay hook ran at start (the first round's delay), and runs after each round.
    cluster.wait_until(10, "two failures of gossip_delay", function()
      return metrics(node)['clustershazbot_policy_failures_total{hook="gossip_delay"}'] >= 2
    end)
    local m = metrics(node)
    assert.are.equal(0, m['clustershazbot_policy_failures_total{hook="health_checks"}'])
    -- /happy/quick runs the checks hook, which fails: counted, and named as a failed check.
    local _, quick = cluster.json("GET", node.url .. "happy/quick")
    assert.are.same({ "health_checks" }, quick.extensionFailures)
    local text = scrape(node)
    assert_valid(text)
    m = samples(text)
    assert.are.equal(1, m['clustershazbot_policy_failures_total{hook="health_checks"}'])
    assert.are.equal(0, m['clustershazbot_policy_failures_total{hook="gossip_target"}'])
  end)

  it("refuses what is not a plain GET with a JSON error, and changes nothing", function()
    local node = cluster.start_node(nil, { SHAZBOT_GOSSIP_INTERVAL = "3600", SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "3600" })
    local status, answer = cluster.json("POST", node.url .. "metrics", "{}")
    assert.are.equal(405, status)
    assert.are.equal("method not allowed: use GET", answer.error)
    status, answer = cluster.json("GET", node.url .. "metrics/")
    assert.are.equal(404, status)
    assert.is_string(answer.error)
    -- Compressed for a client that asks (and valid once decoded: curl decodes it).
    local p = io.popen("curl -s --compressed " .. node.url .. "metrics | promtool check metrics 2>&1; echo \"exit $?\"")
    local out = p:read("a")
    p:close()
    if PROMTOOL then assert.are.equal("exit 0\n", out, out) end
  end)
end)
