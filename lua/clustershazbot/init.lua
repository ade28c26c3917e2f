-- clustershazbot for Lua 5.4 hosts: `local shazbot = require "clustershazbot"`.
--
--   local node = shazbot.new(opts)   -- nil: the environment; or { base_url = ..., secret = ..., ... ,
--                                    --   listen = "host:port", policy = "path.lua" or { hooks } }
--   node:start()
--   local answer, status = node:gossip_request(auth, body)   -- body: JSON string or table
--   local answer, status = node:list_request(auth)
--   local answer, status = node:control_request(auth, body)
--   local answer, status = node:happy_request(auth, quick)
--   local list = node:server_list(include_offline)
--   node:step(max_wait)   node:listen(host, port)   node:run()   node:shutdown()   node:close()
--   node:on_change(function(event) ... end)   -- change events (README, "Events")
--
-- and, mirroring the original library, a default node from the environment:
--   shazbot.start()  shazbot.gossip_request(auth, body)  ...  shazbot.shutdown()
--
-- The interface is lua/clustershazbot/facade.lua, shared with the LuaJIT FFI binding; the C
-- module clustershazbot.native (bindings/lua/native.c) is its backend.

local native = require "clustershazbot.native"
local facade = require "clustershazbot.facade"

return facade.module(native)
