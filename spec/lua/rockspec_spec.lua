-- The rockspec builds and installs offline with Debian's luarocks.

local cluster = require "support.cluster"

describe("the rockspec", function()
  it("builds with `luarocks make` offline and installs a working program", function()
    if os.getenv("SHAZBOT_SANITIZE") == "ON" then
      pending("the packaging does not depend on the sanitizer build; checked in the normal suite")
      return
    end
    local source = assert(os.getenv("SHAZBOT_SOURCE"))
    local tree = cluster.tempdir() .. "/rocks"
    local status, out = cluster.sh(string.format(
      "cd '%s' && luarocks --lua-version 5.4 --tree '%s' make clustershazbot-0.1.0-1.rockspec", source, tree))
    assert.are.equal(0, status, out)
    local v = io.popen("'" .. tree .. "/bin/clustershazbot' version")
    assert.are.equal("clustershazbot 0.1.0", v:read("l"))
    v:close()
    -- No pkg-config file: LuaRocks moves lib/, one would point at nothing (see the rockspec).
    local pc = io.popen("find '" .. tree .. "' -name '*.pc'")
    assert.are.equal("", pc:read("a"))
    pc:close()
    -- The Lua module, where LuaRocks's own paths find it.
    status, out = cluster.sh(string.format(
      "eval \"$(luarocks --lua-version 5.4 --tree '%s' path)\" && lua5.4 -e 'print(require(\"clustershazbot\").version)'", tree))
    assert.are.equal(0, status, out)
    assert.truthy(out:find("0.1.0", 1, true), out)
  end)
end)
