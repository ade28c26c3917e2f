-- clustershazbot inside nginx: one worker (worker 0) owns the engine.
--
-- Why one owner: nginx workers are separate processes, and a node's state must be one. The
-- owning worker runs the engine (timers, transfers, and the endpoints on its own loopback
-- listener, SHAZBOT_LISTEN), stepping it from a timer without ever blocking; every worker
-- proxies /clustershazbot/* and /happy to that listener (see nginx.conf). When nginx stops
-- (`nginx -s quit`) or reloads, the timer runs once more as "premature": the node leaves the
-- cluster there, telling its peers, before the worker exits.

local M = {}

-- `opts`: nil to read the SHAZBOT_* environment (pass it with nginx's `env` directive), or a
-- table of options; `library`: the path of libclustershazbot.so, if not on the linker's path.
function M.init_worker(opts, library)
  if ngx.worker.id() ~= 0 then return end
  local shazbot = require "clustershazbot.ffi"
  local node = shazbot.new(opts, library)
  node:listen()
  node:start()
  local ok, err = ngx.timer.every(0.005, function(premature)
    if premature then
      node:shutdown()
      node:close()
      return
    end
    node:step(0)
  end)
  if not ok then ngx.log(ngx.ERR, "clustershazbot: cannot start the engine timer: ", err) end
  M.node = node
end

return M
