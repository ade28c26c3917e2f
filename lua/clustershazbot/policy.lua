-- The default policy of a clustershazbot node.
--
-- A policy is a table of hooks. The engine calls them with plain tables (snapshots: changing
-- them changes nothing in the engine) and checks what they return. A user script given by
-- SHAZBOT_POLICY returns a table that overrides any of these; it can reuse them with
--     local default = require "clustershazbot.policy"
--
-- Records look like { baseUrl = "http://10.0.0.7:3000/", monitor = false, lastUpdate = 1795478695140 }.

local core = require "clustershazbot.core" -- array() marks a table as a JSON array; null; health_payload()

local policy = {}

-- Bootstrap and shutdown messages go to this many random peers, plus every monitor.
policy.fanout = 20

local function shuffled(list)
  local copy = {}
  for i, v in ipairs(list) do copy[i] = v end
  for i = #copy, 2, -1 do
    local j = math.random(i)
    copy[i], copy[j] = copy[j], copy[i]
  end
  return copy
end
policy.shuffled = shuffled

-- The peer (one of `peers`, the online records other than this node) to gossip with this
-- round, as its baseUrl; nil when there is none. Monitors are preferred: when there are any,
-- every other round on average goes to one of them.
function policy.gossip_target(peers, self)
  if #peers == 0 then return nil end
  local monitors = {}
  for _, p in ipairs(peers) do
    if p.monitor then monitors[#monitors + 1] = p end
  end
  if #monitors > 0 and math.random() < 0.5 then
    return monitors[math.random(#monitors)].baseUrl
  end
  return peers[math.random(#peers)].baseUrl
end

-- Which offline peer to probe this round, as a position 1..count among the `count` offline
-- peers younger than the purge horizon, or nil for none. A probe is a gossip message to a
-- peer believed offline: if it answers, it was not (a partition that healed, a peer that
-- restarted), and one answer brings it and its side of the cluster back online at once. It
-- runs beside the round and costs one request to a peer that is most often really gone, so
-- by default one round in four on average probes one at random.
policy.probe_chance = 0.25
function policy.probe_target(count)
  if math.random() < policy.probe_chance then return math.random(count) end
  return nil
end

-- Up to `policy.fanout` random peers plus every monitor, as a list of baseUrls, in the order
-- the engine sends to them (it runs a bounded number of transfers at once, and at shutdown
-- stops at its deadline): the random peers first, then the monitors. The random ones are
-- drawn from the peers that are not monitors, since every monitor is added anyway: a draw
-- spent on a monitor would be a real peer left out (with thousands of monitors, which any
-- holder of the secret can inject, almost every draw would be).
local function fanout_targets(peers)
  local chosen, others = {}, {}
  for _, p in ipairs(peers) do
    if not p.monitor then others[#others + 1] = p end
  end
  for i, p in ipairs(shuffled(others)) do
    if i > policy.fanout then break end
    chosen[#chosen + 1] = p.baseUrl
  end
  for _, p in ipairs(peers) do
    if p.monitor then chosen[#chosen + 1] = p.baseUrl end
  end
  return chosen
end

function policy.bootstrap_targets(peers, self) return fanout_targets(peers) end
function policy.shutdown_targets(peers, self) return fanout_targets(peers) end

-- Seconds until the next gossip round: the interval, jittered by +-10% so that nodes started
-- together drift apart.
function policy.gossip_delay(interval)
  return interval * (0.9 + 0.2 * math.random())
end

-- Seconds until the next master-list announcement.
function policy.announce_delay(minimum, interval)
  return minimum + math.random() * interval
end

-- The /happy payload, as a table that a user's hook may extend (see
-- examples/policies/health_extension.lua). `info` has: running, error (when not running),
-- online and offline (the records, when running), reqPerSec, reqPerMin, failsPerMin,
-- errPerMin, skippedEntries, refutations, policyFailures. Its fields are core/happy.c's, which
-- writes the other forms of the payload too.
-- The engine recognises this function and writes the same payload without building it in Lua
-- (at 100,000 records that took 130 to 205 ms); a hook of a user's that calls it is run.
policy.health = core.health_payload

-- Told of each change event (README, "Events"), in the order this node saw them: `event` is
-- { seq =, kind = "join"|"alive"|"failed"|"left"|"offline"|"purged"|"self", baseUrl =,
-- time = (ms, this node's clock), before = { status = "online"|"offline", lastUpdate =,
-- monitor = } or nil, after = the same or nil }. What it returns is ignored. It runs under
-- the budget of every hook, inside the engine: keep it short. The default does nothing (and
-- the engine calls no hook at all when the policy has none of its own).
function policy.on_change(event) end

return policy
