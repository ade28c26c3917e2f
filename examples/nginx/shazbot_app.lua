-- The example's upstreams: every worker balances /app/ over the cluster's live members, which
-- the engine's worker publishes into a lua_shared_dict (shazbot_worker.lua), with no reload.
--
-- The members are `clustershazbot serve` nodes, each beside a backend (backend.lua) that
-- listens on the node's host at the node's port + 1: a convention of this example only. In a
-- cluster of one node and one backend per host, give `port = 8080` (the backends' port)
-- instead of `address`; for nodes embedded in their backends, neither.
--
-- APP_HYSTERESIS (seconds, default 10): how long a member back from offline stays online
-- before it takes traffic again.

local balancer = require "clustershazbot.balancer"

local M = {}
local pools = {}

local function beside_its_node(member)
  local host, port = balancer.host_port(member.baseUrl)
  if not host then return nil, port end
  return host, port + 1
end

-- In init_worker_by_lua*, in every worker.
function M.init_worker(dict)
  local setting = os.getenv("APP_HYSTERESIS")
  local hysteresis = tonumber(setting or "10")
  if not hysteresis then error("APP_HYSTERESIS: expected seconds, got '" .. setting .. "'") end
  -- Round robin over every member.
  pools.app = balancer.new { dict = dict, hysteresis = hysteresis, address = beside_its_node }
  -- The same members, each key (a user) kept on one of them while it lives.
  pools.by_user = balancer.new { dict = dict, hysteresis = hysteresis, address = beside_its_node }
end

-- In balancer_by_lua*: the pool's next member, for `key` if given. With no member to send the
-- request to, nginx answers 502.
function M.balance(name, key)
  local member, err = pools[name]:balance(key)
  if not member then
    ngx.log(ngx.ERR, "upstream ", name, ": ", err)
    return ngx.exit(502)
  end
end

return M
