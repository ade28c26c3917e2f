-- examples/lua-host.lua, run by lua5.4 against the installed module, joins two standalone
-- nodes: the three converge, and SIGTERM makes the Lua host leave the cluster.

local cluster = require "support.cluster"
local install = require "support.install"

describe("the Lua host example", function()
  teardown(function() cluster.cleanup() end)

  it("runs a node that joins two standalone nodes, converges and leaves on SIGTERM", function()
    local installed = install.prefix()
    local source = os.getenv("SHAZBOT_SOURCE")
    local store = cluster.start_store()
    local a, b = cluster.start_node(store), cluster.start_node(store)
    local port = cluster.free_port()
    -- With an example policy: every node here is in one zone (127.0.0.x), so the zone-aware
    -- choices must still reach everyone.
    local env = cluster.node_env(port, store, { SHAZBOT_POLICY = source .. "/examples/policies/zone_aware.lua" })
    env.LUA_PATH = installed.lua_path .. ";;"
    env.LUA_CPATH = installed.lua_cpath .. ";;"
    -- Under the sanitizers the module needs their runtimes first in the process.
    if os.getenv("SHAZBOT_SANITIZE") == "ON" then
      local _, runtimes = cluster.sh("echo $(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)")
      env.LD_PRELOAD = runtimes:gsub("%s+$", "")
    end
    local host = { url = env.SHAZBOT_BASE_URL }
    host.proc = cluster.spawn_program("lua5.4", source .. "/examples/lua-host.lua", env)
    local all = { a, b, host }
    cluster.wait_until(30, "the Lua host and the two nodes to converge", function()
      if cluster.exit_status(host.proc) then error("the Lua host exited: " .. cluster.read_log(host.proc)) end
      return cluster.converged(all)
    end)
    cluster.signal(host.proc, "TERM")
    assert.are.equal(0, cluster.wait_exit(host.proc, 30), cluster.read_log(host.proc))
    cluster.wait_until(10, "the nodes to list the Lua host offline", function()
      return cluster.view(a).offline[host.url] and cluster.view(b).offline[host.url]
    end)
    assert.truthy(cluster.read_log(host.proc):find("lua host: node running", 1, true))
  end)
end)
