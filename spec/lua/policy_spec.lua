-- User policies (SHAZBOT_POLICY) that throw, loop forever, eat memory or answer garbage: the
-- node must keep serving and gossiping on the default decisions, and count the failures
-- (extensions.clustershazbot.policyFailures of /happy). A policy that cannot be loaded stops
-- the node from starting.

local cluster = require "support.cluster"

local fixtures = (os.getenv("SHAZBOT_SOURCE") or ".") .. "/spec/lua/fixtures/"

-- Neither gossip rounds nor announcements of their own.
local QUIET = { SHAZBOT_GOSSIP_INTERVAL = "3600", SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "3600" }

local function happy(node)
  local status, answer = cluster.json("GET", node.url .. "happy")
  assert(status == 200, "/happy of " .. node.url .. " answered " .. tostring(status))
  return answer
end

local function policy_failures(node) return happy(node).extensions.clustershazbot.policyFailures end

local function write_master_list(dir, urls)
  local records = {}
  for i, url in ipairs(urls) do
    records[i] = string.format('{"baseUrl":"%s","monitor":false,"lastUpdate":0}', url)
  end
  local f = assert(io.open(dir .. "/master-list.json", "w"))
  f:write('{"online":[' .. table.concat(records, ",") .. "]}")
  f:close()
end

-- A cluster where only the node with the policy gossips: the master list names only that node
-- (`bad`), and the two others (`good`) never gossip nor announce. good[1] starts first, so it
-- can learn of good[2] only from a gossip round of `bad`: convergence shows `bad` gossiping.
local function start_cluster(policy_file)
  local dir = cluster.tempdir()
  local bad_port = cluster.free_port()
  write_master_list(dir, { string.format("http://127.0.0.1:%d/", bad_port) })
  local store = cluster.start_store(dir)
  local bad = cluster.start_node(store, { SHAZBOT_POLICY = fixtures .. policy_file, SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "3600" },
    { port = bad_port })
  local good = { cluster.start_node(store, QUIET) }
  cluster.wait_until(10, "good[1] to have bootstrapped with the bad node", function()
    return cluster.view(bad).online[good[1].url]
  end)
  good[2] = cluster.start_node(store, QUIET)
  return bad, good
end

-- The freshest lastUpdate of `node`'s record among `others`.
local function freshest(node, others)
  local best
  for _, o in ipairs(others) do
    local r = cluster.view(o).online[node.url]
    if r and (not best or r.lastUpdate > best) then best = r.lastUpdate end
  end
  return best
end

describe("a node with a misbehaving policy", function()
  after_each(function() cluster.cleanup() end)

  for _, case in ipairs({
    { "whose hooks all throw", "throwing_policy.lua", true },
    { "whose hooks never return (or eat memory)", "looping_policy.lua", true },
    { "whose hooks answer garbage", "garbage_policy.lua", true },
    { "whose health hook throws", "throwing_health_policy.lua", false },
  }) do
    local name, file, in_rounds = case[1], case[2], case[3]

    it(name .. " keeps serving and gossiping, and counts the failures", function()
      local bad, good = start_cluster(file)
      local all = { bad, good[1], good[2] }
      cluster.wait_until(20, "the cluster to converge", function() return cluster.converged(all) end)

      -- Its gossip rounds go on: each refreshes its record at the peer it picks.
      local seen = freshest(bad, good)
      for i = 1, 2 do
        seen = cluster.wait_until(10, "gossip round " .. i .. " of the bad node to refresh its record", function()
          local now = freshest(bad, good)
          return now > seen and now
        end)
      end

      local first = policy_failures(bad)
      assert.is_true(first > 0, "no policy failure counted")
      if in_rounds then
        -- Every round asks the broken hooks again.
        cluster.wait_until(10, "more failures, from later rounds", function() return policy_failures(bad) > first end)
        assert.truthy(cluster.read_log(bad.proc):find("policy hook gossip_", 1, true))
      end
      for _, g in ipairs(good) do assert.are.equal(0, policy_failures(g)) end

      -- /happy of the bad node, built by the default health hook unless the policy has its own.
      local payload = happy(bad)
      assert.is_true(payload.running)
      local entry = payload.extensions.clustershazbot
      assert.are.equal("ok", entry.status)
      local listed = {}
      for _, r in ipairs(entry.cluster.online) do listed[r.baseUrl] = true end
      for _, n in ipairs(all) do assert.is_true(listed[n.url], n.url .. " missing from /happy") end
      assert.are.equal(200, (cluster.request("GET", bad.url .. "happy/quick")))
      assert.is_nil(cluster.exit_status(bad.proc))
    end)
  end

  it("whose health hook raises, answers a non-table or an unencodable table still answers /happy", function()
    local node = cluster.start_node(nil, { SHAZBOT_POLICY = fixtures .. "broken_health_policy.lua" })
    local before = policy_failures(node) -- its own failure included
    for i = 1, 3 do
      local status, payload, text = cluster.json("GET", node.url .. "happy")
      assert.are.equal(200, status)
      assert.is_true(payload.running)
      assert.truthy(text:find('"extensionFailures":[]', 1, true), text)
      local entry = payload.extensions.clustershazbot
      assert.are.equal("ok", entry.status)
      assert.are.equal(node.url, entry.cluster.online[1].baseUrl)
      assert.are.equal(before + i, entry.policyFailures) -- this request's failure included
    end
    local log = cluster.read_log(node.proc)
    assert.truthy(log:find("health is broken", 1, true), log)
    assert.truthy(log:find("returned something other than a table", 1, true), log)
  end)
end)

describe("a policy that reuses the default", function()
  after_each(function() cluster.cleanup() end)

  it("overrides only gossip_delay: its node gossips every 0.5 s despite a 3600 s interval", function()
    -- The master list names both nodes from the start, and nothing else moves: no
    -- announcements, the other node never gossips. Only the policy's rounds (to a target the
    -- default gossip_target picks) can refresh its record at the other node.
    local dir = cluster.tempdir()
    local a_port, b_port = cluster.free_port(), cluster.free_port()
    write_master_list(dir, { string.format("http://127.0.0.1:%d/", a_port), string.format("http://127.0.0.1:%d/", b_port) })
    local store = cluster.start_store(dir)
    local b = cluster.start_node(store, QUIET, { port = b_port })
    local env = { SHAZBOT_POLICY = fixtures .. "reusing_policy.lua" }
    for k, v in pairs(QUIET) do env[k] = v end
    local a = cluster.start_node(store, env, { port = a_port })
    local function a_seen_by_b()
      local r = cluster.view(b).online[a.url]
      return r and r.lastUpdate
    end
    local seen = cluster.wait_until(10, "b to know a", a_seen_by_b)
    local t0 = cluster.now()
    for _ = 1, 4 do
      seen = cluster.wait_until(3, "a's next gossip round to refresh its record at b", function()
        local now = a_seen_by_b()
        return now and now > seen and now
      end)
    end
    -- Four rounds in well under the 3600 s interval, and under 4 x 1.1 s as well.
    assert.is_true(cluster.now() - t0 < 4, "four rounds took " .. (cluster.now() - t0) .. " s")
    assert.are.equal(0, policy_failures(a))
    assert.is_true(cluster.converged({ a, b }))
  end)
end)

describe("a policy that cannot be loaded", function()
  after_each(function() cluster.cleanup() end)

  for _, case in ipairs({
    { "does not exist", "no_such_policy.lua", "No such file" },
    { "does not return a table", "not_a_table_policy.lua", "must return a table" },
    { "is not Lua", "syntax_error_policy.lua", "syntax_error_policy.lua:" },
    { "never returns from its top level", "looping_load_policy.lua", "instruction budget" },
  }) do
    it("stops the node from starting (status 2) when the script " .. case[1], function()
      local script = fixtures .. case[2]
      local proc = cluster.spawn("serve", cluster.node_env(cluster.free_port(), nil, { SHAZBOT_POLICY = script }))
      assert.are.equal(2, cluster.wait_exit(proc, 10))
      local log = cluster.read_log(proc)
      assert.truthy(log:find("SHAZBOT_POLICY", 1, true), log)
      assert.truthy(log:find(script, 1, true), log)
      assert.truthy(log:find(case[3], 1, true), log)
    end)
  end
end)
