-- User policies (SHAZBOT_POLICY) that throw, loop forever, eat memory or answer garbage: the
-- node must keep serving and gossiping on the default decisions, and count the failures.

local cluster = require "support.cluster"

local fixtures = (os.getenv("SHAZBOT_SOURCE") or ".") .. "/spec/lua/fixtures/"

local function policy_failures(node)
  local status, happy = cluster.json("GET", node.url .. "happy")
  assert(status == 200, "/happy answered " .. tostring(status))
  return happy.extensions.clustershazbot.policyFailures
end

describe("a node with a misbehaving policy", function()
  after_each(function() cluster.cleanup() end)

  for _, case in ipairs({
    { "throws in every hook", "throwing_policy.lua" },
    { "never returns (or eats memory)", "looping_policy.lua" },
    { "answers garbage", "garbage_policy.lua" },
  }) do
    it(case[1] .. ": keeps serving and gossiping, and counts the failures", function()
      local store = cluster.start_store()
      local good = { cluster.start_node(store), cluster.start_node(store) }
      local bad = cluster.start_node(store, { SHAZBOT_POLICY = fixtures .. case[2] })
      local all = { good[1], good[2], bad }
      cluster.wait_until(20, "the cluster to converge", function() return cluster.converged(all) end)
      -- Gossip rounds go on: each one asks the broken hook again and counts another failure.
      local first = cluster.wait_until(10, "a policy failure to be counted", function()
        local n = policy_failures(bad)
        return n > 0 and n
      end)
      cluster.wait_until(10, "more failures, from later rounds", function() return policy_failures(bad) > first end)
      assert.are.equal(0, policy_failures(good[1]))
      assert.truthy(cluster.read_log(bad.proc):find("policy hook", 1, true))
      assert.is_nil(cluster.exit_status(bad.proc))
    end)
  end

  it("whose health hook fails still answers /happy, built by the default", function()
    local store = cluster.start_store()
    local node = cluster.start_node(store, { SHAZBOT_POLICY = fixtures .. "broken_health_policy.lua" })
    for _ = 1, 3 do
      local status, happy = cluster.json("GET", node.url .. "happy")
      assert.are.equal(200, status)
      assert.are.equal("ok", happy.extensions.clustershazbot.status)
      assert.is_true(happy.running)
    end
    assert.is_true(policy_failures(node) >= 3)
  end)

  it("is refused at start when the script is missing or returns no table", function()
    for _, script in ipairs({ fixtures .. "no_such_policy.lua", fixtures .. "not_a_table_policy.lua" }) do
      local proc = cluster.spawn("serve", cluster.node_env(cluster.free_port(), nil, { SHAZBOT_POLICY = script }))
      assert.are.equal(2, cluster.wait_exit(proc, 10))
      local log = cluster.read_log(proc)
      assert.truthy(log:find("SHAZBOT_POLICY", 1, true), log)
      assert.truthy(log:find(script, 1, true), log)
    end
  end)
end)

describe("a policy that reuses the default", function()
  teardown(function() cluster.cleanup() end)

  it("overrides only what it defines: its node gossips every 0.5 s despite a 3600 s interval", function()
    -- The master list names both nodes from the start, and nothing else moves: no
    -- announcements, the other node never gossips. Only the policy's rounds can refresh its
    -- record at the other node.
    local dir = cluster.tempdir()
    local a_port, b_port = cluster.free_port(), cluster.free_port()
    local f = assert(io.open(dir .. "/master-list.json", "w"))
    f:write(string.format('{"online":[{"baseUrl":"http://127.0.0.1:%d/","monitor":false,"lastUpdate":0},' ..
                          '{"baseUrl":"http://127.0.0.1:%d/","monitor":false,"lastUpdate":0}]}', a_port, b_port))
    f:close()
    local store = cluster.start_store(dir)
    local quiet = { SHAZBOT_GOSSIP_INTERVAL = "3600", SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "3600" }
    local b = cluster.start_node(store, quiet, { port = b_port })
    quiet.SHAZBOT_POLICY = fixtures .. "reusing_policy.lua"
    local a = cluster.start_node(store, quiet, { port = a_port })
    local function a_seen_by_b()
      local r = cluster.view(b).online[a.url]
      return r and r.lastUpdate
    end
    local seen = cluster.wait_until(10, "b to know a", a_seen_by_b)
    for _ = 1, 3 do
      seen = cluster.wait_until(3, "a's next gossip round to refresh its record at b", function()
        local now = a_seen_by_b()
        return now and now > seen and now
      end)
    end
    assert.are.equal(0, policy_failures(a))
  end)
end)
