-- A health extension of one's own beside extensions.clustershazbot in /happy: here a summary
-- of the cluster by zone-less counts, and how long the node has been up.
--
-- Use: SHAZBOT_POLICY=examples/policies/health_extension.lua clustershazbot serve

local default = require "clustershazbot.policy"

local policy = setmetatable({}, { __index = default })

local started = os.time()

function policy.health(info)
  local payload = default.health(info)
  local entry = { status = "ok", uptimeSeconds = os.time() - started }
  if info.running then
    entry.onlineCount = #info.online
    entry.offlineCount = #info.offline
  else
    entry.status = "error"
    entry.error = "not running"
  end
  payload.extensions.example = entry
  if entry.status ~= "ok" then payload.extensionFailures = payload.extensionFailures + 1 end
  return payload
end

return policy
