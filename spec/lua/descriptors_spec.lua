-- A node and a store that run out of file descriptors. Under a flood of connections accept()
-- fails with EMFILE while the pending connections stay queued; libevent 2.1 alone retried on
-- every loop turn, used a whole core and wrote hundreds of thousands of warnings a second.
-- Here each runs with 64 descriptors (prlimit) and gets 100 idle connections: it must pause
-- accepting rather than spin, warn once, and serve again once the flood is gone.

local cluster = require "support.cluster"
local socket = require "socket"

local ticks_per_second = tonumber(select(2, cluster.sh("getconf CLK_TCK")):match("%d+"))

-- CPU time (user + system) of a process, in seconds.
local function cpu_seconds(pid)
  local f = assert(io.open("/proc/" .. pid .. "/stat"))
  local stat = f:read("a")
  f:close()
  -- Fields after the command name, which is in parentheses and may hold spaces.
  local fields = {}
  for field in stat:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = field end
  return (tonumber(fields[12]) + tonumber(fields[13])) / ticks_per_second
end

local function open_connections(port, count)
  local connections = {}
  for _ = 1, count do
    local c = socket.tcp()
    c:settimeout(1)
    assert(c:connect("127.0.0.1", port))
    connections[#connections + 1] = c
  end
  return connections
end

local function count_lines(text, pattern)
  local n = 0
  for _ in text:gmatch(pattern) do n = n + 1 end
  return n
end

local WARNING = "cannot accept connections %(Too many open files%)"

local function open_descriptors(pid)
  local _, out = cluster.sh("ls /proc/" .. pid .. "/fd | wc -l")
  return tonumber(out:match("%d+"))
end

-- Floods `port` (served by `proc`, which has 64 descriptors), checks that it pauses rather
-- than spins, closes the flood, then waits for `serving()` to be true again.
local function flood_and_recover(proc, port, serving)
  local connections = open_connections(port, 100)
  -- Connections are closed however the checks end: the programs a later spec starts would
  -- inherit them, and with them a shortage of their own.
  finally(function() for _, c in ipairs(connections) do c:close() end end)
  cluster.wait_until(10, "the program to use all its descriptors", function()
    return open_descriptors(proc.pid) >= 63
  end)
  local cpu_before, wall_before = cpu_seconds(proc.pid), cluster.now()
  cluster.sleep(2) -- a measured interval, not a wait for a condition
  local cpu = cpu_seconds(proc.pid) - cpu_before
  local wall = cluster.now() - wall_before
  print(string.format("# out of descriptors: %.2f s of CPU in %.2f s", cpu, wall))
  assert.is_true(cpu < 0.25 * wall, string.format("%.2f s of CPU in %.2f s: the loop spins", cpu, wall))
  -- One warning; the next one would come 10 s later at the earliest.
  assert.are.equal(1, count_lines(cluster.read_log(proc), WARNING), cluster.read_log(proc):sub(1, 2000))
  for _, c in ipairs(connections) do c:close() end
  cluster.wait_until(10, "serving again after the flood", serving)
end

-- The soft limit on open files of a running process, from /proc.
local function soft_fd_limit(pid)
  local f = assert(io.open("/proc/" .. pid .. "/limits"))
  local limits = f:read("a")
  f:close()
  return tonumber(limits:match("Max open files%s+(%d+)"))
end

describe("out of file descriptors", function()
  teardown(function() cluster.cleanup() end)

  it("the program raises its soft limit on open files to the hard limit", function()
    local store = cluster.start_store()
    local node = cluster.start_node(store, nil, { wrapper = "prlimit --nofile=64:4096" })
    assert.are.equal(4096, soft_fd_limit(node.proc.pid))
  end)

  it("a node pauses accepting instead of spinning, and serves and gossips again afterwards", function()
    local store = cluster.start_store()
    local peer = cluster.start_node(store)
    local node = cluster.start_node(store, nil, { wrapper = "prlimit --nofile=64:64" })
    cluster.wait_until(10, "the two nodes to converge", function() return cluster.converged({ peer, node }) end)
    flood_and_recover(node.proc, node.port, function()
      return cluster.request("GET", node.url .. "clustershazbot/list") == 200
    end)
    cluster.wait_until(10, "the two nodes to agree again", function() return cluster.converged({ peer, node }) end)
    assert.is_nil(cluster.exit_status(node.proc))
  end)

  it("a store pauses accepting instead of spinning, and serves again afterwards", function()
    local store = cluster.start_store(nil, nil, { wrapper = "prlimit --nofile=64:64" })
    flood_and_recover(store.proc, store.port, function() return cluster.request("GET", store.url) == 200 end)
    assert.is_nil(cluster.exit_status(store.proc))
  end)
end)
