-- clustershazbot inside nginx: one worker (worker 0) owns the engine.
--
-- Why one owner: nginx workers are separate processes, and a node's state must be one. The
-- owning worker runs the engine (timers, transfers, and the endpoints on its own loopback
-- listener, SHAZBOT_LISTEN), stepping it from a timer without ever blocking; every worker
-- proxies /clustershazbot/* and /happy to that listener (see nginx.conf), so it does not
-- matter which worker a request lands on.
--
-- Leaving: on `nginx -s quit` (and on a reload, for the old workers) the timer runs once more
-- as "premature"; the node leaves the cluster there, telling its peers, before the worker
-- exits. That blocks the exiting worker for the bounded time of the goodbye only.
--
-- Reload: the new worker 0 starts while the old one may still hold the engine's port for its
-- goodbye, so it retries listening until the port is free, then starts its engine.
--
-- Service discovery: given a lua_shared_dict, the owner publishes the members there
-- (clustershazbot.balancer.publish) on each change, for the balancers of every worker: its
-- node's change events (node:on_change, delivered after a step) mark the list as changed, and
-- the step that follows publishes it once, however many events came.

local M = {}

local STEP_SECONDS = 0.005    -- how often the engine's loop is stepped, without waiting
local LISTEN_RETRY_SECONDS = 0.2
local LISTEN_PATIENCE_SECONDS = 60 -- beyond the engine's bounded shutdown (25 s at most)

-- A function to call after each step: publishes the node's members into `dict` when a change
-- event came since the last publication (and once at the start).
local function members_publisher(node, dict, own_url, control_secret)
  local balancer = require "clustershazbot.balancer"
  local cjson = require "cjson.safe"
  local changed = true
  node:on_change(function() changed = true end)
  return function()
    if not changed then return end
    local text, status = node:list_request(control_secret)
    local list = status == 200 and cjson.decode(text)
    if type(list) ~= "table" then return end
    local version, err = balancer.publish(dict, list, own_url)
    if version then
      changed = false
    else
      ngx.log(ngx.ERR, "clustershazbot: cannot publish the members: ", err)
    end
  end
end

-- `opts`: nil to read the SHAZBOT_* environment (pass it with nginx's `env` directive), or a
-- table of options; `library`: the path of libclustershazbot.so, if it is neither beside the
-- installed clustershazbot/ffi.lua (P/lib) nor on the linker's path; `members_dict`: the name
-- of a lua_shared_dict to publish the members into (nil: none), this node itself left out.
function M.init_worker(opts, library, members_dict)
  if members_dict and not ngx.shared[members_dict] then
    ngx.log(ngx.ALERT, "clustershazbot: no lua_shared_dict named ", members_dict)
    members_dict = nil
  end
  if ngx.worker.id() ~= 0 then return end
  local shazbot = require "clustershazbot.ffi"
  if library then shazbot = shazbot.open(library) end
  local made, node = pcall(shazbot.new, opts)
  if not made then
    ngx.log(ngx.ALERT, node)
    return
  end
  M.node = node
  local publish = members_dict and members_publisher(node, ngx.shared[members_dict],
    opts and opts.base_url or os.getenv("SHAZBOT_BASE_URL"),
    opts and opts.control_secret or os.getenv("SHAZBOT_CONTROL_SECRET"))

  local function drive(premature)
    if premature then
      if node:is_running() then node:shutdown() end
      node:close()
      return
    end
    node:step(0)
    if publish then publish() end
  end

  local patience_ends = ngx.now() + LISTEN_PATIENCE_SECONDS
  local waiting = false
  local function begin(premature)
    if premature then -- nginx stops before the engine ever started
      node:close()
      return
    end
    local listening, why = pcall(node.listen, node)
    if not listening then
      if not waiting then ngx.log(ngx.NOTICE, "clustershazbot: waiting for the engine's port: ", why) end
      waiting = true
      local retrying, err = ngx.now() < patience_ends and ngx.timer.at(LISTEN_RETRY_SECONDS, begin)
      if not retrying then
        ngx.log(ngx.ALERT, "clustershazbot: the engine cannot listen: ", err or why)
        node:close()
      end
      return
    end
    node:start()
    local ok, err = ngx.timer.every(STEP_SECONDS, drive)
    if not ok then -- never stepped, so nothing was sent: nobody knows of this node
      ngx.log(ngx.ALERT, "clustershazbot: cannot start the engine's timer: ", err)
      node:close()
    end
  end
  begin(false)
end

return M
