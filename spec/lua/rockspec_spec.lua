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
    local p = io.popen(string.format(
      "cd '%s' && luarocks --lua-version 5.4 --tree '%s' make clustershazbot-0.1.0-1.rockspec 2>&1; echo \"exit:$?\"",
      source, tree))
    local out = p:read("a")
    p:close()
    assert.truthy(out:find("exit:0", 1, true), out)
    local v = io.popen("'" .. tree .. "/bin/clustershazbot' version")
    assert.are.equal("clustershazbot 0.1.0", v:read("l"))
    v:close()
  end)
end)
