-- A cluster that survives a month (issue 10), on real node processes: an offline record past
-- the purge horizon does not stay in the cluster, and a state pushed past SHAZBOT_MAX_BODY
-- does not split it.
--
-- Measured on the code before: the expired record was held by every node at every sample;
-- two accepted messages of 8,000 offline records each (1 MiB limit) made every exchange fail
-- for good, each node listing the other offline within seconds.
local cluster = require "support.cluster"
local cjson = require "cjson"



-- Gossip POSTed to `node` as a peer would; returns the status.
local function gossip(node, body)
  return (cluster.request("POST", node.url .. "clustershazbot/gossip", body, { Authorization = cluster.secret }))
end

-- `count` offline records stamped `stamp`, named by `prefix` (distinct per call).
local function offline_records(count, prefix, stamp)
  local records = {}
  for i = 1, count do
    records[i] = { baseUrl = string.format("http://%s-%05d.invalid:3000/", prefix, i), monitor = false, lastUpdate = stamp }
  end
  return records
end

local function node_pair(extra)
  local store = cluster.start_store()
  local a = cluster.start_node(store, extra)
  local b = cluster.start_node(store, extra)
  -- Announcements are off: each is told of the other.
  for _, pair in ipairs({ { a, b }, { b, a } }) do
    gossip(pair[1], cluster.gossip_body({ { baseUrl = pair[2].url, monitor = false, lastUpdate = os.time() * 1000 } }))
  end
  cluster.wait_until(15, "the two nodes to list each other online", function() return cluster.converged({ a, b }) end)
  return a, b
end

describe("a bounded state", function()
  after_each(function() cluster.cleanup() end)

  local quiet = { SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "3600", SHAZBOT_MASTER_ANNOUNCE_INTERVAL = "0" }

  it("does not take back an offline record older than the purge horizon", function()
    local a, b = node_pair(quiet)
    local stale = { baseUrl = "http://stale.invalid:3000/", monitor = false, lastUpdate = 0 }
    assert.are.equal(200, gossip(a, cluster.gossip_body({}, { stale })))
    -- Sampled for 5 s (5 rounds): neither node ever holds it.
    local held = 0
    local deadline = cluster.now() + 5
    while cluster.now() < deadline do
      for _, n in ipairs({ a, b }) do
        if cluster.view(n).offline[stale.baseUrl] then held = held + 1 end
      end
      cluster.sleep(0.25)
    end
    assert.are.equal(0, held, "the expired record was held in " .. held .. " samples")
  end)

  it("stays within SHAZBOT_MAX_BODY, and two full messages do not cut the link", function()
    local limit = 1048576
    local a, b = node_pair(cluster.merged(quiet, { SHAZBOT_MAX_BODY = tostring(limit) }))
    local stamp = os.time() * 1000 - 60000 -- a minute ago: young
    for k, prefix in ipairs({ "flood-a", "flood-b" }) do
      local body = cluster.gossip_body({}, offline_records(8000, prefix, stamp + k))
      assert.is_true(#body < limit, "each message is within the limit")
      assert.are.equal(200, gossip(a, body))
    end
    -- Over 10 s (10 rounds each way) the two keep each other online, and their states fit.
    local deadline, samples = cluster.now() + 10, 0
    while cluster.now() < deadline do
      for _, pair in ipairs({ { a, b }, { b, a } }) do
        local status, text = cluster.request("GET", pair[1].url .. "clustershazbot/list", nil,
          { Authorization = cluster.control_secret })
        assert.are.equal(200, status)
        assert.is_true(#text + 64 < limit, string.format("%s holds a state of %d bytes", pair[1].url, #text))
        local list = cjson.decode(text)
        local online = {}
        for _, r in ipairs(list.online) do online[r.baseUrl] = true end
        assert.is_true(online[pair[2].url], pair[1].url .. " lists " .. pair[2].url .. " offline")
      end
      samples = samples + 1
      cluster.sleep(0.5)
    end
    -- The flood reached b through gossip (the link works), trimmed the same way.
    assert.is_true(next(cluster.view(b).offline) ~= nil)
    print(string.format("# %d samples, both online throughout; a holds %d offline records", samples,
      (function() local n = 0 for _ in pairs(cluster.view(a).offline) do n = n + 1 end return n end)()))
    assert.truthy(cluster.read_log(a.proc):find("state over its limit", 1, true))
  end)
end)
