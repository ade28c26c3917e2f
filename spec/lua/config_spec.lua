-- `clustershazbot serve` refuses a bad configuration: exit status 2, and its output names the
-- variable and the value (the original library turned a bad number silently into NaN).

local cluster = require "support.cluster"

-- Starts `serve` with the environment of a good node changed by `extra` (false removes a
-- variable); returns its exit status and its output.
local function serve(extra)
  local proc = cluster.spawn("serve", cluster.node_env(cluster.free_port(), nil, extra))
  local status = cluster.wait_exit(proc, 10)
  return status, cluster.read_log(proc)
end

local function refused(extra, ...)
  local status, log = serve(extra)
  assert.are.equal(2, status, log)
  for _, text in ipairs({ ... }) do
    assert.truthy(log:find(text, 1, true), "output does not name " .. text .. ":\n" .. log)
  end
end

describe("clustershazbot serve", function()
  after_each(function() cluster.cleanup() end)

  for _, name in ipairs({ "SHAZBOT_SECRET", "SHAZBOT_CONTROL_SECRET", "SHAZBOT_BASE_URL", "SHAZBOT_MASTER_LIST",
                          "SHAZBOT_MASTER_LIST_UPDATE", "SHAZBOT_MASTER_LIST_UPDATE_AUTH" }) do
    it("exits with status 2 when " .. name .. " is missing, naming it", function()
      refused({ [name] = false }, name, "missing")
    end)
  end

  it("exits with status 2 when a required secret is empty", function()
    refused({ SHAZBOT_SECRET = "" }, "SHAZBOT_SECRET", '""', "empty")
    refused({ SHAZBOT_CONTROL_SECRET = "" }, "SHAZBOT_CONTROL_SECRET", '""', "empty")
  end)

  -- Empty is not unset: an empty HAPPY_SECRET would open /happy to an empty Authorization
  -- header, an empty SHAZBOT_POLICY name no file. Both are refused with what to do instead.
  it("exits with status 2 when HAPPY_SECRET or SHAZBOT_POLICY is empty, saying what to do", function()
    refused({ HAPPY_SECRET = "" }, "HAPPY_SECRET", '""', "'none' opens /happy")
    refused({ SHAZBOT_POLICY = "" }, "SHAZBOT_POLICY", '""', "unset it to use the default policy")
  end)

  for _, case in ipairs({
    { "SHAZBOT_GOSSIP_INTERVAL", "abc" }, { "SHAZBOT_GOSSIP_INTERVAL", "0" }, { "SHAZBOT_GOSSIP_INTERVAL", "-1" },
    { "SHAZBOT_GOSSIP_INTERVAL", "" }, { "SHAZBOT_GOSSIP_INTERVAL", "nan" }, { "SHAZBOT_GOSSIP_INTERVAL", "1e400" },
    { "SHAZBOT_GOSSIP_INTERVAL", "30s" }, { "SHAZBOT_GOSSIP_INTERVAL", " 30" },
    { "SHAZBOT_MASTER_ANNOUNCE_MINIMUM", "soon" }, { "SHAZBOT_MASTER_ANNOUNCE_INTERVAL", "-5" },
    { "SHAZBOT_MONITOR", "maybe" }, { "SHAZBOT_MONITOR", "1" }, { "SHAZBOT_MONITOR", "" },
    { "SHAZBOT_UPDATE_MASTER_LIST_ON_SHUTDOWN", "yes" },
    { "SHAZBOT_BASE_URL", "http://127.0.0.1:3000" }, { "SHAZBOT_BASE_URL", "ftp://127.0.0.1:3000/" },
    { "SHAZBOT_BASE_URL", "127.0.0.1:3000/" },
    { "SHAZBOT_LISTEN", "nowhere" }, { "SHAZBOT_LISTEN", "127.0.0.1:70000" },
    { "SHAZBOT_MAX_BODY", "12kb" }, { "SHAZBOT_MAX_BODY", "10" },
    { "SHAZBOT_LOG_LEVEL", "loud" }, { "SHAZBOT_REQUEST_TIMEOUT", "0" }, { "SHAZBOT_REQUEST_TIMEOUT", "1m" },
    { "SHAZBOT_PROFILE", "fast" }, { "SHAZBOT_PROFILE", "" }, { "SHAZBOT_PROFILE", "lan " },
  }) do
    it(string.format("exits with status 2 on %s=%q, naming the variable and the value", case[1], case[2]), function()
      refused({ [case[1]] = case[2] }, case[1], '"' .. case[2] .. '"')
    end)
  end

  it("refuses an unknown SHAZBOT_PROFILE with status 2, naming the variable, the value and the choices", function()
    refused({ SHAZBOT_PROFILE = "datacentre" }, 'SHAZBOT_PROFILE: "datacentre" is not one of local, lan, wan')
  end)

  -- The node says at start which timings are in effect: each profile's, and what was set
  -- explicitly beside a profile (the test support's environment sets the interval: unset here).
  it("takes its timings from SHAZBOT_PROFILE, explicit settings winning", function()
    for _, case in ipairs({
      { { SHAZBOT_PROFILE = "local" }, "gossip every 1 s, timeout 1 s, retry 0.5 s, suspicion window 1.5 s, profile local" },
      { { SHAZBOT_PROFILE = "lan" }, "gossip every 2 s, timeout 1 s, retry 0.5 s, suspicion window 3 s, profile lan" },
      { { SHAZBOT_PROFILE = "WAN" }, "gossip every 10 s, timeout 5 s, retry 3 s, suspicion window 30 s, profile wan" },
      { { SHAZBOT_PROFILE = "wan", SHAZBOT_GOSSIP_INTERVAL = "7", SHAZBOT_SUSPICION_WINDOW = "0" },
        "gossip every 7 s, timeout 5 s, retry 3 s, suspicion window 0 s, profile wan" },
      { { SHAZBOT_GOSSIP_INTERVAL = "2" }, "gossip every 2 s, timeout 2 s, retry 1 s, suspicion window 3 s" },
    }) do
      local env = { SHAZBOT_GOSSIP_INTERVAL = false }
      for k, v in pairs(case[1]) do env[k] = v end
      local node = cluster.start_node(nil, env)
      local log = cluster.read_log(node.proc)
      local line = log:match("starting as [^\n]*") or log
      assert.truthy(line:find(node.url .. ": " .. case[2], 1, true), line)
      if not case[1].SHAZBOT_PROFILE then assert.falsy(line:find("profile", 1, true), line) end
      cluster.cleanup()
    end
  end)

  it("accepts case-insensitive booleans and fractional seconds", function()
    local node = cluster.start_node(nil, { SHAZBOT_MONITOR = "TRUE", SHAZBOT_GOSSIP_INTERVAL = "0.5",
                                           SHAZBOT_UPDATE_MASTER_LIST_ON_SHUTDOWN = "False" })
    assert.is_true(cluster.view(node).online[node.url].monitor)
  end)

  it("refuses intervals past 30 days, and timeouts and clock skews past their bounds", function()
    -- 1e300 s once reached the timers as a negative timeout (rounds back to back); the timers
    -- cap delays at 30 days, and a setting beyond that is a mistake: refused, named.
    -- SHAZBOT_REQUEST_TIMEOUT=1e16 cut every connection at its first byte and
    -- SHAZBOT_MAX_CLOCK_SKEW=1e16 skipped every entry 1 ms in the future (overflows).
    for name, value in pairs({ SHAZBOT_GOSSIP_INTERVAL = "1e300", SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "2592001",
                               SHAZBOT_MASTER_ANNOUNCE_INTERVAL = "1e300", SHAZBOT_REQUEST_TIMEOUT = "1e16",
                               SHAZBOT_MAX_CLOCK_SKEW = "1e16" }) do
      local status, log = serve({ [name] = value })
      assert.are.equal(2, status, name .. ": " .. log)
      assert.truthy(log:find(name .. ": \"" .. value .. "\" is more seconds than the most this setting takes", 1, true), log)
    end
  end)

  it("takes intervals of days without counting policy failures", function()
    local node = cluster.start_node(nil, { SHAZBOT_GOSSIP_INTERVAL = tostring(3 * 86400),
                                           SHAZBOT_MASTER_ANNOUNCE_MINIMUM = tostring(2 * 86400) })
    local status, happy = cluster.json("GET", node.url .. "happy")
    assert.are.equal(200, status)
    assert.are.equal(0, happy.extensions.clustershazbot.policyFailures)
  end)

  it("exits with status 1 (not 2) when it cannot listen, naming the address", function()
    local node = cluster.start_node(nil)
    local taken = "127.0.0.1:" .. node.port
    local status, log = serve({ SHAZBOT_LISTEN = taken })
    assert.are.equal(1, status, log)
    assert.truthy(log:find(taken, 1, true), log)
  end)

  -- Without SHAZBOT_LISTEN a node serves every interface, IPv6 ones included: a base URL on
  -- [::1] must be reachable. Machines without an IPv6 loopback (some containers) skip this.
  local ipv6_case = "serves IPv4 and IPv6 when SHAZBOT_LISTEN is unset: nodes on [::1] form a cluster"
  if not cluster.has_ipv6_loopback() then
    pending(ipv6_case .. " (no IPv6 loopback on this machine)")
  else
    it(ipv6_case, function()
      local store = cluster.start_store()
      local nodes = {}
      for i = 1, 2 do
        local port = cluster.free_port()
        local url = string.format("http://[::1]:%d/", port)
        -- start_node waits for an answer on 127.0.0.1: the IPv4 side of the same listener.
        nodes[i] = cluster.start_node(store, { SHAZBOT_BASE_URL = url, SHAZBOT_LISTEN = false }, { port = port })
        nodes[i].ipv6_url = url
        assert.truthy(cluster.read_log(nodes[i].proc):find("and [::]:" .. port, 1, true), cluster.read_log(nodes[i].proc))
      end
      -- Peers reach each other only at their [::1] base URLs.
      cluster.wait_until(15, "the nodes to list each other online", function()
        for _, a in ipairs(nodes) do
          local view = cluster.view(a)
          for _, b in ipairs(nodes) do
            if not view.online[b.ipv6_url] then return false end
          end
        end
        return true
      end)
      local status = cluster.sh("curl -sfg -o /dev/null " .. nodes[1].ipv6_url .. "clustershazbot/list")
      assert.are.equal(0, status)
    end)
  end

  it("gossips with peers directly when the environment names a proxy, and takes the master list through it", function()
    -- The store answers at every path, absolute-URI request lines included, so it stands in
    -- for the proxy. Node b has the proxy in its environment and a master-list URL nobody
    -- listens on: only a request sent through the proxy reaches the list, which holds node a.
    -- Nobody announces, so a learns of b only from b's gossip: sent through the proxy, it
    -- would reach the store instead, and a would never hear of b.
    local quiet = { SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "3600" }
    local store = cluster.start_store()
    local a = cluster.start_node(store, quiet)
    local record = cluster.view(a).online[a.url]
    assert.are.equal(200, (cluster.request("PUT", store.url, { online = { record } }, { Authorization = cluster.update_auth })))
    local nowhere = "http://127.0.0.1:9/list.json"
    local b = cluster.start_node(store, {
      SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "3600", http_proxy = store.url, ALL_PROXY = store.url,
      SHAZBOT_MASTER_LIST = nowhere, SHAZBOT_MASTER_LIST_UPDATE = nowhere,
    }, { wrapper = "env -u no_proxy -u NO_PROXY" }) -- whatever exceptions this machine's environment holds
    cluster.wait_until(15, "the two nodes to converge", function() return cluster.converged({ a, b }) end)
    assert.truthy(cluster.read_log(b.proc):find("master list loaded: 2 known", 1, true), cluster.read_log(b.proc))
  end)
end)
