-- clustershazbot.balancer: the cluster's live members as nginx's upstream peers, with no reload.
--
-- Two halves meet in a lua_shared_dict, which every worker of an nginx reads:
--
--   balancer.publish(dict, members [, own_url])
--       In the worker that owns the engine, whenever the membership may have changed (after an
--       engine step, or from a change event): `members` is the node's list as
--       `GET clustershazbot/list` gives it with the control secret, decoded
--       ({ online = { record, ... }, offline = { ... } }; offline may be absent). The members
--       with the baseUrl `own_url` (nginx's own node, not a backend) are left out. Returns the
--       dict's version, bumped only when the membership changed. One publisher per dict: it
--       reads, merges and writes without a lock.
--
--   local pool = balancer.new{ dict = "members", hysteresis = 10, match = "^http://10%.", ... }
--   pool:balance([key])   -- in balancer_by_lua*: true, or nil and why
--       Picks a live member: round robin, or by a consistent hash of `key` when one is given;
--       on a failed connection nginx runs the balancer again and the next member is tried.
--
-- Why a version counter: decoding the members on every request would cost each request the
-- size of the cluster. Each worker keeps its own decoded copy and only reads the counter,
-- one integer, per request; the copy is rebuilt when the counter moves.
--
-- Why hysteresis lives here and is judged by each pool: a member that flaps (seen offline,
-- then online again) should prove itself before it takes traffic, and how long is a matter
-- for each upstream, not for the cluster. The dict records when each member came online in
-- this node's view and whether it came back from offline; a member that is new to the
-- cluster, or was already online when nginx started, takes traffic at once, so that starting
-- nginx never means N seconds without a backend.
--
-- Conventions of OpenResty modules: misuse (a wrong option, a missing dict) raises an error;
-- what can happen at run time (no live member, an address nginx refuses) is nil and a message.

local cjson = require "cjson.safe"

local balancer = { _VERSION = "0.1.0" }

local MEMBERS_KEY, VERSION_KEY = "clustershazbot:members", "clustershazbot:version"
local OFFLINE_MEMORY_SECONDS = 24 * 3600 -- as long as the engine keeps offline records
local HASH_POINTS = 160                  -- points per member on the consistent-hash ring
local DEFAULT_HYSTERESIS, DEFAULT_TRIES, DEFAULT_FAIL_TIMEOUT = 10, 3, 10

local function misuse(call, why) error("clustershazbot.balancer." .. call .. ": " .. why, 3) end

local function is_dict(dict)
  return type(dict) == "table" and type(dict.get) == "function" and type(dict.set) == "function"
end

-- The dict given, or the lua_shared_dict of that name.
local function dict_of(dict, call)
  if type(dict) == "string" then
    local shared = ngx.shared[dict]
    if not shared then misuse(call, "no lua_shared_dict named '" .. dict .. "' (declare it in the http block)") end
    return shared
  end
  if not is_dict(dict) then misuse(call, "dict: expected a lua_shared_dict or its name, got " .. type(dict)) end
  return dict
end

-- What the dict holds: { online = { [baseUrl] = entry }, offline = { [baseUrl] = entry } },
-- entries { baseUrl, monitor, since, rejoined }. Stored as JSON with the records as arrays,
-- sorted by baseUrl, so that every worker orders the members alike.
local function read_state(dict)
  local text = dict:get(MEMBERS_KEY)
  local stored = text and cjson.decode(text)
  local state = { online = {}, offline = {} }
  for _, status in ipairs({ "online", "offline" }) do
    for _, entry in ipairs(type(stored) == "table" and type(stored[status]) == "table" and stored[status] or {}) do
      if type(entry) == "table" and type(entry.baseUrl) == "string" then state[status][entry.baseUrl] = entry end
    end
  end
  return state
end

local function sorted_entries(map)
  local list = {}
  for _, entry in pairs(map) do list[#list + 1] = entry end
  table.sort(list, function(a, b) return a.baseUrl < b.baseUrl end)
  return list
end

-- The membership as one string, to tell whether anything a pool cares about changed.
local function fingerprint(state)
  local parts = {}
  for _, status in ipairs({ "online", "offline" }) do
    for _, entry in ipairs(sorted_entries(state[status])) do
      parts[#parts + 1] = string.format("%s %s %s %s %s", status, entry.baseUrl, tostring(entry.monitor),
        tostring(entry.since), tostring(entry.rejoined))
    end
  end
  return table.concat(parts, "\n")
end

local function records_of(members, status, call)
  local records = members[status]
  if records == nil and status == "offline" then return {} end
  if type(records) ~= "table" then misuse(call, "members." .. status .. ": expected an array of records, got " .. type(records)) end
  return records
end

function balancer.publish(dict, members, own_url)
  local call = "publish()"
  dict = dict_of(dict, call)
  if type(members) ~= "table" then misuse(call, "members: expected the node's list, got " .. type(members)) end
  if own_url ~= nil and type(own_url) ~= "string" then misuse(call, "own_url: expected a string or nil, got " .. type(own_url)) end
  local online, offline = records_of(members, "online", call), records_of(members, "offline", call)

  local now = ngx.now()
  local before = read_state(dict)
  local after = { online = {}, offline = {} }
  for _, record in ipairs(online) do
    local url = type(record) == "table" and record.baseUrl
    if type(url) == "string" and url ~= own_url then
      local kept = before.online[url]
      after.online[url] = {
        baseUrl = url, monitor = record.monitor == true,
        -- Still online: it keeps its time. Back from offline: a flap, held back from now.
        since = kept and kept.since or now,
        rejoined = kept and kept.rejoined or before.offline[url] ~= nil,
      }
    end
  end
  local function went_offline(url, since)
    if url ~= own_url and not after.online[url] and not after.offline[url] then
      after.offline[url] = { baseUrl = url, since = since }
    end
  end
  for _, record in ipairs(offline) do
    local url = type(record) == "table" and record.baseUrl
    if type(url) == "string" then
      local known = before.offline[url]
      went_offline(url, known and known.since or now)
    end
  end
  -- Members that left the online list without being listed offline (a caller that has no
  -- offline list) are remembered as offline all the same, as long as the engine would.
  for url in pairs(before.online) do went_offline(url, now) end
  for url, entry in pairs(before.offline) do
    if now - (tonumber(entry.since) or 0) < OFFLINE_MEMORY_SECONDS then went_offline(url, entry.since) end
  end

  local version = dict:get(VERSION_KEY)
  if version and fingerprint(after) == fingerprint(before) then return version end
  local text = cjson.encode({ online = sorted_entries(after.online), offline = sorted_entries(after.offline) })
  -- The members first, then the counter: a worker that sees the new counter reads the new
  -- members (one that reads the new members under the old counter reads them again later).
  local ok, err = dict:set(MEMBERS_KEY, text)
  if not ok then return nil, "cannot store the members: " .. tostring(err) end
  local new_version
  new_version, err = dict:incr(VERSION_KEY, 1, 0)
  if not new_version then return nil, "cannot bump the version: " .. tostring(err) end
  return new_version
end

-- What publish() stored: { version, online = { entry, ... }, offline = { ... } }, sorted by
-- baseUrl; for status pages and tests.
function balancer.members(dict)
  dict = dict_of(dict, "members()")
  local state = read_state(dict)
  return { version = dict:get(VERSION_KEY) or 0, online = sorted_entries(state.online), offline = sorted_entries(state.offline) }
end

-- The host and port of a baseUrl (`http://10.0.0.7:3000/` -> "10.0.0.7", 3000; the scheme's
-- port when none is written; an IPv6 address without its brackets), or nil and why.
function balancer.host_port(base_url)
  if type(base_url) ~= "string" then return nil, "not a URL: " .. tostring(base_url) end
  local scheme, authority = base_url:match("^(https?)://([^/]+)/")
  if not scheme then return nil, "not an http(s) URL: " .. base_url end
  local host, port = authority:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host then return nil, "no host in " .. base_url end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  return host, port
end

local Pool = {}
Pool.__index = Pool

local function option(opts, name, kind)
  local value = opts[name]
  if value ~= nil and type(value) ~= kind then
    misuse("new()", string.format("option '%s': expected a %s, got %s", name, kind, type(value)))
  end
  return value
end

local known_options = { dict = true, hysteresis = true, match = true, filter = true, address = true, port = true,
                        tries = true, fail_timeout = true }

function balancer.new(opts)
  if type(opts) ~= "table" then misuse("new()", "expected a table of options, got " .. type(opts)) end
  for name in pairs(opts) do
    if not known_options[name] then misuse("new()", "unknown option '" .. tostring(name) .. "'") end
  end
  if opts.dict == nil then misuse("new()", "option 'dict' is required: the lua_shared_dict publish() writes") end
  local self = setmetatable({ dict = dict_of(opts.dict, "new()") }, Pool)
  self.match, self.filter, self.address = option(opts, "match", "string"), option(opts, "filter", "function"),
    option(opts, "address", "function")
  if self.match then
    local valid, why = pcall(string.find, "", self.match)
    if not valid then misuse("new()", "option 'match': not a Lua pattern: " .. tostring(why)) end
  end
  local port, tries = option(opts, "port", "number"), option(opts, "tries", "number")
  if port and (port ~= math.floor(port) or port < 1 or port > 65535) then misuse("new()", "option 'port': expected a port number, got " .. port) end
  if port and self.address then misuse("new()", "options 'port' and 'address' exclude each other") end
  self.port = port
  if tries and (tries ~= math.floor(tries) or tries < 1) then misuse("new()", "option 'tries': expected a whole number of tries, 1 or more, got " .. tries) end
  self.tries = tries or DEFAULT_TRIES
  local fail_timeout = option(opts, "fail_timeout", "number")
  if fail_timeout and not (fail_timeout >= 0) then misuse("new()", "option 'fail_timeout': expected seconds (0 or more), got " .. fail_timeout) end
  self.fail_timeout = fail_timeout or DEFAULT_FAIL_TIMEOUT
  self.failed = {} -- baseUrl -> until when this worker sends it no first try
  self:set_hysteresis(opts.hysteresis == nil and DEFAULT_HYSTERESIS or opts.hysteresis)
  self.turn = 0
  return self
end

-- Seconds a member that came back from offline stays online before it takes traffic; may be
-- changed at any time (it applies from the next request on).
function Pool:set_hysteresis(seconds)
  if type(seconds) ~= "number" or seconds < 0 or seconds ~= seconds then
    error("clustershazbot.balancer: hysteresis: expected seconds (0 or more), got " .. tostring(seconds), 2)
  end
  self.hysteresis = seconds
  self.review_at = 0 -- the members taking traffic are judged again
end

-- Where a member's backend is: the `address` function's answer, else the baseUrl's host and
-- the `port` option or the baseUrl's own port (a node embedded in its backend).
function Pool:peer_of(entry)
  local host, port
  if self.address then
    host, port = self.address(entry)
  else
    host, port = balancer.host_port(entry.baseUrl)
    port = self.port or port
  end
  if type(host) ~= "string" or type(port) ~= "number" then return nil, port or "no address" end
  return { baseUrl = entry.baseUrl, host = host, port = port }
end

local function build_ring(peers)
  local ring = {}
  for i, peer in ipairs(peers) do
    for point = 1, HASH_POINTS do
      ring[#ring + 1] = { hash = ngx.crc32_long(peer.baseUrl .. "#" .. point), index = i }
    end
  end
  table.sort(ring, function(a, b) return a.hash < b.hash end)
  return ring
end

-- The members taking traffic now, in baseUrl order; rebuilt when publish() changed them or a
-- held-back member's hysteresis ended.
function Pool:peers()
  local version, now = self.dict:get(VERSION_KEY), ngx.now()
  if version == nil then return nil, "no members published yet (is the engine's worker running?)" end
  if version == self.version and now < self.review_at then return self.current end
  local peers, review_at = {}, math.huge
  for _, entry in ipairs(balancer.members(self.dict).online) do
    local ready_at = entry.rejoined and (tonumber(entry.since) or 0) + self.hysteresis or 0
    if now < ready_at then
      review_at = math.min(review_at, ready_at)
    elseif (not self.match or entry.baseUrl:find(self.match)) and (not self.filter or self.filter(entry)) then
      local peer, why = self:peer_of(entry)
      if peer then
        peers[#peers + 1] = peer
      else
        ngx.log(ngx.WARN, "clustershazbot.balancer: member ", entry.baseUrl, " left out: ", why)
      end
    end
  end
  -- A member the cluster no longer lists has been judged: its mark is of no more use, and
  -- must not hold it back when it returns.
  local listed = {}
  for _, peer in ipairs(peers) do listed[peer.baseUrl] = true end
  for url in pairs(self.failed) do
    if not listed[url] then self.failed[url] = nil end
  end
  self.version, self.review_at, self.current, self.ring = version, review_at, peers, nil
  return peers
end

-- The first member for `key` on the ring: the one whose point follows the key's hash.
function Pool:hashed(peers, key)
  self.ring = self.ring or build_ring(peers)
  local ring, hash = self.ring, ngx.crc32_long(key)
  local low, high = 1, #ring
  if hash > ring[high].hash then return ring[1].index end
  while low < high do
    local middle = math.floor((low + high) / 2)
    if ring[middle].hash < hash then low = middle + 1 else high = middle end
  end
  return ring[low].index
end

-- From `index` on, the first member this worker has not seen fail within fail_timeout; if
-- all have, `index` itself (a guess beats no answer).
function Pool:first_healthy(peers, index)
  local now = ngx.now()
  for step = 0, #peers - 1 do
    local candidate = (index - 1 + step) % #peers + 1
    local until_at = self.failed[peers[candidate].baseUrl]
    if not until_at or until_at <= now then return candidate end
  end
  return index
end

-- In balancer_by_lua*: sets the peer of this try. The first try picks (by `key`'s hash, else
-- the next in turn), passing over members whose connection failed in this worker within the
-- last fail_timeout seconds (the cluster takes seconds to agree that a killed member is
-- offline; nginx's max_fails does the same for static upstreams), and allows up to `tries`
-- tries in all, never more than there are members; each retry, after a failed connection or
-- an answer proxy_next_upstream retries, takes the next member of those of the first try.
-- Returns the member's baseUrl, or nil and why.
function Pool:balance(key)
  if key ~= nil and type(key) ~= "string" then
    error("clustershazbot.balancer: balance(): key: expected a string or nil, got " .. type(key), 2)
  end
  local ngx_balancer = require "ngx.balancer"
  local ctx = ngx.ctx
  local try = ctx[self]
  if try then
    try.count = try.count + 1
    if try.count > #try.peers then return nil, "every member tried has failed" end
    local failure, status = ngx_balancer.get_last_failure()
    local url = try.peers[try.index].baseUrl
    self.failed[url] = ngx.now() + self.fail_timeout
    ngx.log(ngx.WARN, "clustershazbot.balancer: ", url, " failed (", tostring(failure),
      status and status ~= 0 and " " .. status or "", "), trying the next member")
    try.index = self:first_healthy(try.peers, try.index % #try.peers + 1)
  else
    local peers, err = self:peers()
    if not peers then return nil, err end
    if #peers == 0 then return nil, "no live member takes traffic" end
    local index
    if key then
      index = self:first_healthy(peers, self:hashed(peers, key))
    else
      -- The turn moves past a member passed over, which would otherwise get its share twice.
      index = self:first_healthy(peers, self.turn % #peers + 1)
      self.turn = index
    end
    try = { peers = peers, index = index, count = 1 }
    ctx[self] = try
    local more = math.min(self.tries, #peers) - 1
    if more > 0 then
      local ok, err = ngx_balancer.set_more_tries(more)
      if not ok then return nil, "cannot allow retries: " .. tostring(err) end
    end
  end
  local peer = try.peers[try.index]
  local ok, err = ngx_balancer.set_current_peer(peer.host, peer.port)
  if not ok then return nil, string.format("%s (%s:%d): %s", peer.baseUrl, peer.host, peer.port, tostring(err)) end
  return peer.baseUrl
end

return balancer
