-- The Lua module under valgrind: a host that starts, misuses, stops and closes nodes, with a
-- policy of Lua functions, must finish with no memory error and nothing lost.

local cluster = require "support.cluster"

describe("the Lua module under valgrind", function()
  it("runs a host session with no memory error and no leak", function()
    local build, source = os.getenv("SHAZBOT_BUILD"), os.getenv("SHAZBOT_SOURCE")
    local dir = cluster.tempdir()
    local script = dir .. "/host.lua"
    local f = assert(io.open(script, "w"))
    f:write([[
      local shazbot = require "clustershazbot"
      local opts = { secret = "s", control_secret = "c", base_url = "http://127.0.0.1:1/",
                     master_list = "http://127.0.0.1:9/", master_list_update = "http://127.0.0.1:9/",
                     master_list_update_auth = "u", gossip_interval = 0.05, log_level = "error",
                     policy = { gossip_delay = function(i) error("a failing hook") end } }
      pcall(shazbot.new, { secret = {} })
      local node = shazbot.new(opts)
      node:gossip_request("s", { message = "gossip", online = {} })
      pcall(node.shutdown, node)
      node:start()
      pcall(node.start, node)
      node:gossip_request("s", { message = "gossip", online = { { baseUrl = "http://127.0.0.1:2/", lastUpdate = 1 } } })
      node:gossip_request("s", "{broken")
      node:happy_request()
      for _ = 1, 10 do node:step(0.02) end
      node:shutdown()
      pcall(node.shutdown, node)
      node:close()
      pcall(node.list_request, node)
      local forgotten = shazbot.new(opts)
      forgotten:start()
      print("done")
    ]])
    f:close()
    local vlog = dir .. "/valgrind.log"
    local status, out = cluster.sh(string.format(
      "LUA_CPATH='%s/lua/?.so;;' LUA_PATH='%s/lua/?.lua;%s/lua/?/init.lua;;' timeout 240 valgrind --error-exitcode=99 " ..
      "--leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect " ..
      "--log-file='%s' lua5.4 '%s'", build, source, source, vlog, script))
    local report = io.open(vlog):read("a")
    assert.are.equal(0, status, out .. report)
    assert.truthy(out:find("done", 1, true), out)
    assert.truthy(report:find("ERROR SUMMARY: 0 errors", 1, true), report)
    print("# " .. (report:match("(definitely lost:[^\n]*)") or report:match("(All heap blocks were freed[^\n]*)") or ""))
  end)
end)
