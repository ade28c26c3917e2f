-- Test support: the build tree installed into a fresh prefix with `cmake --install`, as a host
-- would find it, and the Lua paths that point there (the README's LUA_PATH and LUA_CPATH).

local cluster = require "support.cluster"

local install = {}

local installed -- one prefix per spec process

-- Returns { prefix, lua_path, lua_cpath, luajit_path } (paths without the trailing ";;").
function install.prefix()
  if installed then return installed end
  local prefix = cluster.tempdir() .. "/prefix"
  local status, out = cluster.sh(string.format("cmake --install '%s' --prefix '%s'",
    assert(os.getenv("SHAZBOT_BUILD"), "SHAZBOT_BUILD must name the build tree"), prefix))
  assert(status == 0, "cmake --install failed: " .. out)
  installed = {
    prefix = prefix,
    lua_path = prefix .. "/share/lua/5.4/?.lua;" .. prefix .. "/share/lua/5.4/?/init.lua",
    lua_cpath = prefix .. "/lib/lua/5.4/?.so",
    luajit_path = prefix .. "/share/lua/5.1/?.lua",
  }
  return installed
end

return install
