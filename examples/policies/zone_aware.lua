-- A zone-aware peer selection: gossip stays mostly within a node's own zone, and one round in
-- four (ROUNDS_PER_CROSSING) goes to another zone, so that news still crosses zones. The
-- bootstrap and shutdown messages go to the own zone plus one peer of another zone (and every
-- monitor, as by default).
--
-- The zone of a node is read from its baseUrl: here the third number of a loopback address
-- (http://127.0.Z.n:port/ is in zone Z), as the specs run every node on 127.0.0.0/8. A real
-- deployment would read it from a host name (node-7.zone-b.example) or a port range.
--
-- Use: SHAZBOT_POLICY=examples/policies/zone_aware.lua clustershazbot serve

local default = require "clustershazbot.policy"

local policy = setmetatable({}, { __index = default })

policy.ROUNDS_PER_CROSSING = 4

function policy.zone_of(base_url)
  return base_url:match("^https?://%d+%.%d+%.(%d+)%.%d+[:/]") or base_url:match("^https?://([^/:]+)")
end

local function split(peers, self)
  local mine, others = {}, {}
  local zone = policy.zone_of(self.baseUrl)
  for _, p in ipairs(peers) do
    if policy.zone_of(p.baseUrl) == zone then mine[#mine + 1] = p else others[#others + 1] = p end
  end
  return mine, others
end

local round = 0

function policy.gossip_target(peers, self)
  round = round + 1
  local mine, others = split(peers, self)
  local cross = round % policy.ROUNDS_PER_CROSSING == 0
  local pool = (cross and #others > 0 or #mine == 0) and others or mine
  if #pool == 0 then return nil end
  return pool[math.random(#pool)].baseUrl
end

local function zone_targets(peers, self)
  local mine, others = split(peers, self)
  local targets, seen = {}, {}
  local function add(p)
    if not seen[p.baseUrl] then
      seen[p.baseUrl] = true
      targets[#targets + 1] = p.baseUrl
    end
  end
  for i, p in ipairs(default.shuffled(mine)) do
    if i > default.fanout then break end
    add(p)
  end
  if #others > 0 then add(others[math.random(#others)]) end
  for _, p in ipairs(peers) do
    if p.monitor then add(p) end
  end
  return targets
end

policy.bootstrap_targets = zone_targets
policy.shutdown_targets = zone_targets

return policy
