-- Builds and installs clustershazbot (the program, the library, the Lua module) with its own
-- CMake build: `luarocks make` in the source tree, no download needed. A C host builds against
-- a `cmake --install` instead: LuaRocks moves lib/ under its own tree, where a pkg-config file
-- would point at nothing, so the rock has none.
rockspec_format = "3.0"
package = "clustershazbot"
version = "0.1.0-1"
source = {
  url = "git+file:///dev/null", -- `luarocks make` builds the tree it is run in
}
description = {
  summary = "Gossip engine that keeps a cluster of backend services aware of each other",
  detailed = [[
    A C library with a Lua 5.4 policy layer and a standalone node program, wire-compatible
    with the original TypeScript clustershazbot.
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
-- The C libraries (Lua 5.4, libevent, libcurl, yajl, zlib, libzstd) are found by CMake through pkg-config,
-- which knows Debian's multiarch paths; a missing one stops the build naming it.
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    BUILD_TESTING = "OFF",
    SHAZBOT_BENCH = "OFF",
    SHAZBOT_VERSIONED_SONAME = "OFF",
    SHAZBOT_INSTALL_PKGCONFIG = "OFF",
    CMAKE_INSTALL_LIBDIR = "lib",
    -- LuaRocks moves the prefix's lib/ to the tree's C module folder and lua/ to its Lua one.
    SHAZBOT_LUA_CMOD_DIR = "lib",
    SHAZBOT_LUA_MOD_DIR = "lua",
  },
}
