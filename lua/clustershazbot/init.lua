-- clustershazbot for Lua 5.4 hosts.
--
--   local shazbot = require "clustershazbot"
--   local node = shazbot.new(opts)   -- nil: the environment; or { base_url = ..., secret = ..., ... ,
--                                    --   listen = "host:port", policy = "path.lua" or { hooks } }
--   node:start()
--   local answer, status = node:gossip_request(auth, body)   -- body: JSON string or table
--   local answer, status = node:list_request(auth)
--   local answer, status = node:control_request(auth, body)
--   local list = node:server_list(include_offline)
--   node:step(max_wait)   node:listen(host, port)   node:run()   node:shutdown()
--
-- and, mirroring the original library, a default node from the environment:
--   shazbot.start()  shazbot.gossip_request(auth, body)  ...  shazbot.shutdown()

local native = require "clustershazbot.native"

local shazbot = { new = native.new, version = native.version }

local default_node

local function default()
  if not default_node then default_node = native.new() end
  return default_node
end

function shazbot.start() return default():start() end
function shazbot.shutdown()
  local node = default_node
  if not node then error("clustershazbot.shutdown(): no node was started", 2) end
  default_node = nil
  node:shutdown()
  node:close()
  return true
end

for _, name in ipairs({ "gossip_request", "list_request", "control_request", "happy_request",
                        "server_list", "step", "listen", "run" }) do
  shazbot[name] = function(...) local node = default() return node[name](node, ...) end
end

return shazbot
