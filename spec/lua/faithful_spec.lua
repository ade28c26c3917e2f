-- The simulator is faithful: the same scenario, 50 nodes at a 1-second interval, started from
-- a master list that names 3 of them (the rest are found by gossip), converging, then two of
-- them killed with SIGKILL, run with
-- real `clustershazbot serve` processes on loopback and in `clustershazbot simulate`, gives
-- the same convergence and detection times within a stated tolerance.
--
-- Tolerance: the real figure lies within 30 % or two rounds (2 s), whichever is wider, of the
-- median of 60 simulated runs (seeds 1 to 60), or within two rounds of the range of those
-- runs. Detection is a random process (which node picks a dead peer, and when): one real run
-- is one draw, and the simulated runs show how widely such draws spread (about 7 to 13 s
-- here), so a real draw inside that spread agrees with the simulator even when it is far
-- from the median. A simulator off by half would still fail: its whole range would move.

local cluster = require "support.cluster"
local cjson = require "cjson"

local NODES, SEEDS_LISTED, KILLED, INTERVAL = 50, 3, 2, 1
local SEEDS = 60

local function median(values)
  local sorted = {}
  for i, v in ipairs(values) do sorted[i] = v end
  table.sort(sorted)
  local n = #sorted
  return n % 2 == 1 and sorted[(n + 1) / 2] or (sorted[n / 2] + sorted[n / 2 + 1]) / 2
end

local function tolerance(reference) return math.max(0.3 * reference, 2 * INTERVAL) end

-- Every node of `viewers` lists every node of `expected` online and every node of `dead`
-- not online.
local function agree(viewers, expected, dead)
  for _, node in ipairs(viewers) do
    local ok, view = pcall(cluster.view, node)
    if not ok then return false end
    for _, other in ipairs(expected) do
      if not view.online[other.url] then return false end
    end
    for _, gone in ipairs(dead) do
      if view.online[gone.url] then return false end
    end
  end
  return true
end

describe("the simulator", function()
  teardown(function() cluster.cleanup() end)

  it("agrees with a real 50-node cluster on convergence and on detecting 2 killed nodes", function()
    -- The master list an operator writes: the first nodes, online, lastUpdate 0; the
    -- simulator starts from the same.
    local dir = cluster.tempdir()
    local ports, records = {}, {}
    for i = 1, NODES do
      ports[i] = cluster.free_port()
      if i <= SEEDS_LISTED then
        records[i] = { baseUrl = string.format("http://127.0.0.1:%d/", ports[i]), monitor = false, lastUpdate = 0 }
      end
    end
    local f = assert(io.open(dir .. "/master-list.json", "w"))
    f:write(cjson.encode({ online = records }))
    f:close()
    local store = cluster.start_store(dir)
    -- Announcements as the simulator's defaults have them (the test support's are 1 s).
    local env = { SHAZBOT_GOSSIP_INTERVAL = tostring(INTERVAL), SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "300",
                  SHAZBOT_MASTER_ANNOUNCE_INTERVAL = "600", SHAZBOT_LOG_LEVEL = "warn" }

    local nodes = {}
    local t0 = cluster.now()
    for i = 1, NODES do nodes[i] = cluster.start_node(store, env, { port = ports[i], timeout = 10 }) end
    local spread = cluster.now() - t0
    cluster.wait_until(60, "the real cluster to converge", function() return agree(nodes, nodes, {}) end)
    local real_converge = cluster.now() - t0

    -- Which nodes die is drawn at random, as the simulator draws them.
    local order = {}
    for i = 1, NODES do order[i] = i end
    math.randomseed(os.time())
    for i = NODES, 2, -1 do
      local j = math.random(i)
      order[i], order[j] = order[j], order[i]
    end
    local dead, alive, is_dead = {}, {}, {}
    for i = 1, KILLED do is_dead[order[i]] = true end
    for i, node in ipairs(nodes) do
      if is_dead[i] then dead[#dead + 1] = node else alive[#alive + 1] = node end
    end
    for _, node in ipairs(dead) do cluster.signal(node.proc, "KILL") end
    local t1 = cluster.now()
    -- Detection as the simulator times it: no survivor lists a killed node online.
    cluster.wait_until(120, "the survivors to agree on the killed nodes", function()
      return agree(alive, {}, dead)
    end)
    local real_detect = cluster.now() - t1

    -- The same scenario in the simulator, with the start spread the real nodes had.
    local converge, detect = {}, {}
    for seed = 1, SEEDS do
      local status, out = cluster.sh(string.format(
        "%s simulate --nodes %d --seeds %d --interval %d --kill %d --scenario converge,kill --start-spread %.3f --seed %d --json",
        cluster.bin, NODES, SEEDS_LISTED, INTERVAL, KILLED, spread, seed))
      assert.are.equal(0, status, out)
      local result = cjson.decode(out)
      assert.is_true(result.phases[1].reached, "simulated run " .. seed .. " did not converge")
      assert.is_true(result.phases[2].detectedSeconds ~= nil, "simulated run " .. seed .. " did not detect")
      converge[seed] = result.phases[1].seconds
      detect[seed] = result.phases[2].detectedSeconds
    end
    local sim_converge, sim_detect = median(converge), median(detect)
    print(string.format("# start spread %.2f s", spread))
    print(string.format("# convergence: real %.2f s, simulated median %.2f s (%d runs: %.2f to %.2f), tolerance %.2f s",
      real_converge, sim_converge, SEEDS, math.min(table.unpack(converge)), math.max(table.unpack(converge)),
      tolerance(sim_converge)))
    print(string.format("# detection of %d killed: real %.2f s, simulated median %.2f s (%d runs: %.2f to %.2f), tolerance %.2f s",
      KILLED, real_detect, sim_detect, SEEDS, math.min(table.unpack(detect)), math.max(table.unpack(detect)),
      tolerance(sim_detect)))
    local function agrees(real, simulated)
      local reference = median(simulated)
      return math.abs(real - reference) <= tolerance(reference)
          or (real >= math.min(table.unpack(simulated)) - 2 * INTERVAL
              and real <= math.max(table.unpack(simulated)) + 2 * INTERVAL)
    end
    assert.is_true(agrees(real_converge, converge),
      string.format("convergence: real %.2f s against simulated %.2f s", real_converge, sim_converge))
    assert.is_true(agrees(real_detect, detect),
      string.format("detection: real %.2f s against simulated %.2f s", real_detect, sim_detect))
  end)
end)
