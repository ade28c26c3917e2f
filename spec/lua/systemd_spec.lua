-- `clustershazbot serve` under systemd's Type=notify (issue 12, part 5): the datagrams it sends
-- to $NOTIFY_SOCKET, read from a socket of the spec's own (socket.unix, lua-socket), as systemd
-- would: READY=1 once the node listens and has loaded its master list, STATUS= with the member
-- counts, WATCHDOG=1 at half of $WATCHDOG_USEC, STOPPING=1 when it leaves.

local cluster = require "support.cluster"
local unix = require "socket.unix"

-- A datagram socket at a fresh path, and everything received on it with the time it came.
local function listener()
  local path = cluster.tempdir() .. "/notify.sock"
  local sock = assert(unix.dgram())
  assert(sock:bind(path))
  sock:settimeout(0.05)
  local got = {}
  local self = { path = path }
  -- Receives until `pred(got)` holds or `timeout` passes; returns whether it held.
  function self.until_(timeout, pred)
    local deadline = cluster.now() + timeout
    repeat
      local data = sock:receive()
      if data then got[#got + 1] = { at = cluster.now(), text = data } end
      if pred(got) then return true end
    until cluster.now() > deadline
    return pred(got)
  end
  function self.count(key)
    local n = 0
    for _, d in ipairs(got) do
      for line in d.text:gmatch("[^\n]+") do if line:find(key, 1, true) == 1 then n = n + 1 end end
    end
    return n
  end
  function self.first(key)
    for _, d in ipairs(got) do
      for line in d.text:gmatch("[^\n]+") do if line:find(key, 1, true) == 1 then return d, line end end
    end
  end
  function self.close() sock:close() os.remove(path) end
  return self
end

describe("serve under systemd (Type=notify)", function()
  teardown(function() cluster.cleanup() end)

  it("says READY once listening with the master list loaded, STATUS, WATCHDOG and STOPPING", function()
    local store = cluster.start_store()
    local peer = cluster.start_node(store)
    local notify = listener()
    local started = cluster.now()
    local node = cluster.start_node(store, { NOTIFY_SOCKET = notify.path, WATCHDOG_USEC = "400000" })
    assert.is_true(notify.until_(10, function() return notify.count("READY=1") > 0 end), "no READY=1")
    local ready = notify.first("READY=1")
    assert.is_true(ready.at - started < 5)
    assert.are.equal(1, notify.count("READY=1"))
    -- The listener answered before READY (start_node waited for an answer), and the status
    -- follows the cluster: the peer and itself online.
    assert.is_true(notify.until_(10, function() return notify.count("STATUS=2 online, 0 offline") > 0 end),
      "STATUS never said 2 online")
    -- The watchdog: every 0.2 s for WATCHDOG_USEC of 0.4 s.
    local before = notify.count("WATCHDOG=1")
    notify.until_(1.5, function() return false end)
    local beats = notify.count("WATCHDOG=1") - before
    assert.is_true(beats >= 4 and beats <= 12, "watchdog beats in 1.5 s: " .. beats)
    assert.are.equal(0, notify.count("STOPPING=1"))
    cluster.signal(node.proc, "TERM")
    assert.is_true(notify.until_(30, function() return notify.count("STOPPING=1") > 0 end), "no STOPPING=1")
    assert.are.equal(0, cluster.wait_exit(node.proc, 30))
    assert.are.equal(1, notify.count("STOPPING=1"))
    print(string.format("# READY=1 %.2f s after the start; %d watchdog beats in 1.5 s", ready.at - started, beats))
    notify.close()
    cluster.signal(peer.proc, "KILL")
  end)

  it("is not READY while the master list cannot be loaded, and says so in STATUS", function()
    local notify = listener()
    local node = cluster.start_node(nil, { NOTIFY_SOCKET = notify.path }) -- master list at port 9: refused
    assert.is_true(notify.until_(10, function() return notify.count("STATUS=") > 0 end), "no STATUS=")
    local _, line = notify.first("STATUS=")
    assert.truthy(line:find("master list not loaded yet", 1, true), line)
    notify.until_(2, function() return false end)
    assert.are.equal(0, notify.count("READY=1"))
    cluster.signal(node.proc, "TERM")
    assert.are.equal(0, cluster.wait_exit(node.proc, 30))
    assert.is_true(notify.until_(5, function() return notify.count("STOPPING=1") > 0 end), "no STOPPING=1")
    assert.are.equal(1, notify.count("STOPPING=1"))
    notify.close()
  end)

  it("refuses a NOTIFY_SOCKET that is no socket path, and runs on", function()
    local node = cluster.start_node(nil, { NOTIFY_SOCKET = "relative/path" })
    assert.truthy(cluster.read_log(node.proc):find("NOTIFY_SOCKET=relative/path is not a socket path", 1, true))
    cluster.signal(node.proc, "KILL")
  end)
end)
