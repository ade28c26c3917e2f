-- `clustershazbot simulate`: every phase runs and reaches its goal where the engine can, a
-- seed is a run, the time series is written, a user policy is the one that runs, and bad
-- options are refused naming the option. (The figures themselves are held to a real cluster
-- by faithful_spec.lua.)

local cluster = require "support.cluster"
local cjson = require "cjson"

local function simulate(args)
  local status, out = cluster.sh(cluster.bin .. " simulate " .. args)
  return status, out
end

local function simulate_json(args)
  local status, out = simulate(args .. " --json")
  assert.are.equal(0, status, out)
  return cjson.decode(out), out
end

-- The output without what depends on the machine (wall time, memory).
local function reproducible(text) return (text:gsub('"wallSeconds":[%d.]+,"peakRssKb":%d+', "")) end

local function write_file(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

describe("clustershazbot simulate", function()
  it("runs every phase, each to its goal", function()
    local r = simulate_json("--nodes 60 --scenario converge,kill,leave,partition,loss,asymmetric --kill 2 --leave 2 " ..
      "--partition-seconds 20 --loss-seconds 30 --loss 0.05")
    assert.are.equal(6, #r.phases)
    for _, phase in ipairs(r.phases) do
      assert.is_true(phase.reached, phase.phase .. ": " .. phase.result)
      assert.is_true(phase.seconds >= 0 and phase.rounds >= 0, phase.phase)
      print(string.format("# %-18s %6.1f s %5.1f rounds, %d verdicts, %d flaps, %d bytes/node/round: %s",
        phase.phase, phase.seconds, phase.rounds, phase.verdicts, phase.flaps, phase.bytesPerNodeRound, phase.result))
    end
    local kill, leave, partition = r.phases[2], r.phases[3], r.phases[4]
    assert.are.equal("kill 2", kill.phase)
    assert.is_true(kill.detectedSeconds > 0 and kill.detectedSeconds <= kill.seconds)
    assert.are.equal(0, kill.flaps, "verdicts about live nodes while nothing failed but the killed")
    assert.is_true(kill.verdicts >= 2, "each killed node needs at least one verdict")
    assert.are.equal(0, leave.flaps)
    -- A partition makes each side give up on the other: verdicts about live nodes.
    assert.is_true(partition.flaps > 0)
    -- Every message carries the whole state: a round costs at least two bodies of 58 records.
    assert.is_true(kill.bytesPerNodeRound > 2 * 58 * 60, tostring(kill.bytesPerNodeRound))
  end)

  it("keeps a gone node's record through the 24-hour retention in a long run", function()
    -- Within the retention every survivor still holds the record (offline). What happens
    -- after it is the subject of the issue on bounded state: today purged records come back
    -- from peers that still hold them, and the run says so ("never purged everywhere").
    local r = simulate_json("--nodes 12 --interval 30 --scenario converge,longrun --kill 1 --hours 20")
    local longrun = r.phases[2]
    assert.are.equal("longrun 20 h", longrun.phase)
    assert.is_false(longrun.reached)
    assert.are.equal("never purged everywhere: at the end 11 of 11 nodes hold it", longrun.result)
    assert.is_true(math.abs(longrun.seconds - 20 * 3600) < 1)
  end)

  it("takes the interval of a profile, or of --set, unless --interval names one", function()
    assert.are.equal(10, simulate_json("--nodes 6 --scenario converge --set SHAZBOT_PROFILE=wan").interval)
    assert.are.equal(1, simulate_json("--nodes 6 --scenario converge --set SHAZBOT_PROFILE=local").interval)
    assert.are.equal(3, simulate_json("--nodes 6 --scenario converge --set SHAZBOT_PROFILE=wan --interval 3").interval)
    assert.are.equal(4, simulate_json("--nodes 6 --scenario converge --set SHAZBOT_GOSSIP_INTERVAL=4").interval)
    assert.are.equal(2, simulate_json("--nodes 6 --scenario converge").interval)
    -- A profile's rounds are counted in its own interval: 30 virtual seconds of wan are 3 rounds.
    local r = simulate_json("--nodes 6 --scenario converge,kill --kill 1 --set SHAZBOT_PROFILE=wan")
    assert.is_true(r.phases[2].reached)
    assert.is_true(math.abs(r.phases[2].rounds - r.phases[2].seconds / 10) < 0.01, cjson.encode(r.phases[2]))
  end)

  it("repeats a run for a seed, and differs for another", function()
    local args = "--nodes 40 --scenario converge,kill,partition --partition-seconds 20 --json"
    local _, a = simulate(args .. " --seed 5")
    local _, b = simulate(args .. " --seed 5")
    local _, c = simulate(args .. " --seed 6")
    assert.are.equal(reproducible(a), reproducible(b))
    assert.are_not.equal(reproducible(a), reproducible(c))
  end)

  it("prints a table, and writes a time series for plotting", function()
    local csv = cluster.tempdir() .. "/series.csv"
    local status, out = simulate("--nodes 30 --scenario converge,kill --csv " .. csv)
    assert.are.equal(0, status, out)
    assert.truthy(out:find("simulated 30 nodes, interval 2 s", 1, true), out)
    assert.truthy(out:find("\nkill 1 ", 1, true), out)
    assert.truthy(out:find("wall time", 1, true), out)
    local f = assert(io.open(csv))
    assert.are.equal("t,node,online", f:read("l"))
    local rows, nodes, last_t = 0, {}, -1
    for line in f:lines() do
      local t, node, online = line:match("^([%d.]+),(%d+),(%d+)$")
      assert.truthy(t, line)
      t, node, online = tonumber(t), tonumber(node), tonumber(online)
      assert.is_true(t >= last_t and online >= 1 and online <= 30, line)
      last_t, nodes[node] = t, true
      rows = rows + 1
    end
    f:close()
    local distinct = 0
    for _ in pairs(nodes) do distinct = distinct + 1 end
    assert.are.equal(30, distinct)
    assert.is_true(rows >= 30 * 3, "rows: " .. rows)
  end)

  it("runs the user's policy on every node", function()
    local dir = cluster.tempdir()
    -- A policy that never gossips: the cluster then cannot find out that a node died.
    write_file(dir .. "/silent.lua", "return { gossip_target = function() return nil end }\n")
    local r = simulate_json("--nodes 20 --scenario converge,kill --max-wait 30 --policy " .. dir .. "/silent.lua")
    assert.is_true(r.phases[1].reached) -- the master list alone lists everyone
    assert.is_false(r.phases[2].reached)
    assert.truthy(r.phases[2].result:find("not agreed within 30 s", 1, true), r.phases[2].result)
    assert.are.equal(dir .. "/silent.lua", r.policy)
    -- A policy that does not load is refused before anything runs.
    write_file(dir .. "/broken.lua", "return 42\n")
    local status, out = simulate("--nodes 5 --policy " .. dir .. "/broken.lua")
    assert.are.equal(2, status)
    assert.truthy(out:find("must return a table of hooks", 1, true), out)
  end)

  it("refuses bad options, naming them", function()
    local cases = {
      { "--nodes 1", "--nodes: 1 is outside" },
      { "--nodes many", "--nodes: \"many\" is not a number" },
      { "--loss 2", "--loss: 2 is outside" },
      { "--interval 0", "--interval: 0 is outside" },
      { "--scenario kill", "must begin with converge" },
      { "--scenario converge,explode", "unknown phase \"explode\"" },
      { "--kill 50 --nodes 10", "--kill and --leave: at most 9" },
      { "--seed -1", "--seed: \"-1\" is not a whole number" },
      { "--frobnicate 1", "unknown option --frobnicate" },
      { "--nodes", "missing value: --nodes" },
    }
    for _, case in ipairs(cases) do
      local status, out = simulate(case[1])
      assert.are.equal(2, status, case[1] .. ": " .. out)
      assert.truthy(out:find(case[2], 1, true), case[1] .. ": " .. out)
    end
    local status, out = simulate("--help")
    assert.are.equal(0, status)
    assert.truthy(out:find("usage: clustershazbot simulate", 1, true))
  end)
end)
