-- The example policies of examples/policies: their choices, read from the hooks and seen in a
-- running cluster.

local cluster = require "support.cluster"
local cjson = require "cjson"

local examples = os.getenv("SHAZBOT_SOURCE") .. "/examples/policies/"
package.path = os.getenv("SHAZBOT_SOURCE") .. "/lua/?.lua;" .. package.path
-- What the engine gives policies; a stand-in here, so that the hooks load in plain Lua.
package.preload["clustershazbot.core"] = function() return { array = function(t) return t end } end

local function record(host, port) return { baseUrl = string.format("http://%s:%d/", host, port), monitor = false, lastUpdate = 1 } end

describe("the zone-aware policy", function()
  teardown(function() cluster.cleanup() end)

  local zone_aware = dofile(examples .. "zone_aware.lua")
  local self = record("127.0.1.1", 3000)
  local peers = { record("127.0.1.2", 3000), record("127.0.1.3", 3000), record("127.0.1.4", 3000),
                  record("127.0.2.1", 3000), record("127.0.2.2", 3000) }

  it("gossips within the zone, and every fourth round across", function()
    local same, cross = 0, 0
    for round = 1, 400 do
      local target = zone_aware.gossip_target(peers, self)
      if zone_aware.zone_of(target) == "1" then same = same + 1 else cross = cross + 1 end
    end
    assert.are.equal(100, cross)
    assert.are.equal(300, same)
  end)

  it("says hello and goodbye to its zone and one peer of another", function()
    for _ = 1, 20 do
      local targets = zone_aware.bootstrap_targets(peers, self)
      local zones = {}
      for _, url in ipairs(targets) do
        local z = zone_aware.zone_of(url)
        zones[z] = (zones[z] or 0) + 1
      end
      assert.are.same({ ["1"] = 3, ["2"] = 1 }, zones)
    end
  end)

  it("changes where a running node sends its gossip", function()
    -- Every node knows every other from the master list; only the node under test gossips
    -- (the others wait an hour), so the gossip each peer receives comes from its choices.
    local dir = cluster.tempdir()
    local hosts = { "127.0.1.1", "127.0.1.2", "127.0.2.1", "127.0.2.2" }
    local ports, listed = {}, {}
    for i, host in ipairs(hosts) do
      ports[i] = cluster.free_port()
      listed[i] = cjson.encode(record(host, ports[i]))
    end
    local f = assert(io.open(dir .. "/master-list.json", "w"))
    f:write('{"online":[' .. table.concat(listed, ",") .. "]}")
    f:close()
    local store = cluster.start_store(dir)
    local quiet = { SHAZBOT_GOSSIP_INTERVAL = "3600", SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "3600" }
    local nodes = {}
    for i = 2, 4 do nodes[i] = cluster.start_node(store, quiet, { host = hosts[i], port = ports[i] }) end
    -- Requests each peer has answered in the last 3 minutes (up to the last whole second):
    -- currentReqPerMin is their mean per minute.
    local function answered(node)
      local _, happy = cluster.json("GET", node.url .. "happy/quick")
      return math.floor(happy.currentReqPerMin * 3 + 0.5)
    end
    local before = { answered(nodes[2]), answered(nodes[3]), answered(nodes[4]) }
    -- The example policy, unchanged, with each choice printed, so that the spec can wait for
    -- a number of rounds rather than for a time.
    local traced = dir .. "/traced_zone_aware.lua"
    f = assert(io.open(traced, "w"))
    f:write(string.format([[
      local policy = dofile(%q)
      local choose = policy.gossip_target
      function policy.gossip_target(peers, self)
        local target = choose(peers, self)
        print("gossip target " .. tostring(target))
        io.stdout:flush()
        return target
      end
      return policy
    ]], examples .. "zone_aware.lua"))
    f:close()
    nodes[1] = cluster.start_node(store, { SHAZBOT_GOSSIP_INTERVAL = "0.1", SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "3600",
                                           SHAZBOT_POLICY = traced },
                                  { host = hosts[1], port = ports[1] })
    local choices = cluster.wait_until(60, "60 gossip rounds of the zone-aware node", function()
      local targets = {}
      for target in cluster.read_log(nodes[1].proc):gmatch("gossip target (%S+)\n") do targets[#targets + 1] = target end
      return #targets >= 60 and targets
    end)
    local chosen = { [nodes[2].url] = 0, [nodes[3].url] = 0, [nodes[4].url] = 0, ["nil"] = 0 }
    for _, target in ipairs(choices) do chosen[target] = chosen[target] + 1 end
    -- The peers count a request in their figures once its second is over: the last rounds
    -- are in them a second later. (Polling them instead would add requests of its own.)
    local figures_complete = cluster.now() + 1.1
    cluster.wait_until(5, "the peers' per-second figures to include the last rounds", function()
      return cluster.now() > figures_complete
    end)
    local same_zone = answered(nodes[2]) - before[1]
    local other_zone = answered(nodes[3]) - before[2] + answered(nodes[4]) - before[3]
    print(string.format("# %d rounds chose the same-zone peer %d times, the other-zone peers %d and %d times; " ..
      "received: same zone %d, other zone %d", #choices, chosen[nodes[2].url], chosen[nodes[3].url],
      chosen[nodes[4].url], same_zone, other_zone))
    -- One round in four crosses zones, the others stay in the zone (a round before the
    -- master list was loaded has no peer at all: nil).
    local crossings = chosen[nodes[3].url] + chosen[nodes[4].url]
    assert.is_true(crossings >= #choices // 4 - 1 and crossings <= #choices // 4)
    assert.are.equal(#choices - crossings - chosen["nil"], chosen[nodes[2].url])
    assert.is_true(chosen["nil"] <= 2)
    assert.is_true(same_zone + other_zone >= 40, "too few gossip rounds")
    -- By default each of the three peers would get a third (the same-zone peer half as much as
    -- the two others); here it gets three rounds in four. The figures also hold the bootstrap
    -- and the readings themselves, so the check is generous.
    assert.is_true(same_zone > other_zone)
    assert.is_true(other_zone > 0)
  end)
end)

describe("the health extension policy", function()
  teardown(function() cluster.cleanup() end)

  it("adds its own entry next to extensions.clustershazbot", function()
    local store = cluster.start_store()
    local node = cluster.start_node(store, { SHAZBOT_POLICY = examples .. "health_extension.lua" })
    local status, happy = cluster.json("GET", node.url .. "happy")
    assert.are.equal(200, status)
    assert.are.equal("ok", happy.extensions.clustershazbot.status)
    assert.are.equal("ok", happy.extensions.example.status)
    assert.are.equal(1, happy.extensions.example.onlineCount)
    assert.is_number(happy.extensions.example.uptimeSeconds)
    assert.are.equal(0, happy.extensions.clustershazbot.policyFailures)
    -- Alone, its quick check fails, in both payloads; with a peer online it passes.
    assert.are.same({ "example" }, happy.extensionFailures)
    local _, quick = cluster.json("GET", node.url .. "happy/quick")
    assert.are.same({ "example" }, quick.extensionFailures)
    local peer = cluster.start_node(store)
    cluster.wait_until(20, "the node to see its peer", function() return cluster.converged({ node, peer }) end)
    local _, quick_text
    _, quick, quick_text = cluster.json("GET", node.url .. "happy/quick")
    assert.truthy(quick_text:find('"extensionFailures":[]', 1, true), quick_text)
    assert.are.equal(2, quick.trackedValues.membersOnline)
    _, happy = cluster.json("GET", node.url .. "happy")
    assert.are.equal(0, happy.extensions.clustershazbot.policyFailures)
  end)
end)
