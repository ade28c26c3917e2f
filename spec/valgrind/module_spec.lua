-- The Lua module under valgrind: the host session of spec/lua/fixtures/module_session.lua
-- (misuse, a policy of Lua functions that fails, loops and calls back, start and stop, close
-- and the collector) must finish with no memory error and nothing lost.

local cluster = require "support.cluster"

describe("the Lua module under valgrind", function()
  it("runs a host session with no memory error and no leak", function()
    local build, source = os.getenv("SHAZBOT_BUILD"), os.getenv("SHAZBOT_SOURCE")
    local vlog = cluster.tempdir() .. "/valgrind.log"
    local status, out = cluster.sh(string.format(
      "LUA_CPATH='%s/lua/?.so;;' LUA_PATH='%s/lua/?.lua;%s/lua/?/init.lua;;' timeout 240 %s lua5.4 '%s/spec/lua/fixtures/module_session.lua'",
      build, source, source, cluster.valgrind_command(vlog), source))
    local report, leaks = cluster.valgrind_report(vlog)
    assert.are.equal(0, status, out .. report)
    assert.truthy(out:find("done", 1, true), out)
    assert.truthy(report:find("ERROR SUMMARY: 0 errors", 1, true), report)
    print("# " .. leaks)
  end)
end)
