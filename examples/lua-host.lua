-- A Lua 5.4 host running a node: configured from the environment (SHAZBOT_* as for
-- `clustershazbot serve`), serving the endpoints on its own listener, until SIGTERM/SIGINT.
--
--   LUA_PATH="P/share/lua/5.4/?.lua;P/share/lua/5.4/?/init.lua;;" \
--   LUA_CPATH="P/lib/lua/5.4/?.so;;" lua5.4 examples/lua-host.lua
--
-- A host with a loop of its own would call node:step(0) from it instead of node:run().

local shazbot = require "clustershazbot"

local node = shazbot.new() -- nil: every setting from the environment
node:listen()              -- SHAZBOT_LISTEN, or the port of SHAZBOT_BASE_URL
node:start()
print("lua host: node running; SIGTERM leaves the cluster")
io.stdout:flush()
node:run()                 -- returns once the node has left the cluster
node:close()
