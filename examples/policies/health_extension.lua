-- A health extension of one's own beside extensions.clustershazbot in /happy: here a summary
-- of the cluster by zone-less counts, and how long the node has been up; and a quick check,
-- "example", that fails while the node sees no peer online. A failed quick check is named in
-- extensionFailures, of /happy and of /happy/quick alike.
--
-- Use: SHAZBOT_POLICY=examples/policies/health_extension.lua clustershazbot serve

local default = require "clustershazbot.policy"

local policy = setmetatable({}, { __index = default })

local started = os.time()

-- The quick checks: name -> true (passes), false or a string saying why (fails). They are
-- given the health info without the records (cheap at every /happy/quick): membersOnline
-- counts this node too.
function policy.health_checks(info)
  return { example = info.running and info.membersOnline > 1 or "no peer online" }
end

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
  return payload
end

return policy
