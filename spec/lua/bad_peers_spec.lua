-- Peers that misbehave when a node gossips with them (spec/lua/fixtures/bad_peer.lua): one that
-- never answers, one that answers a byte at a time, one whose answer has no end, answers that
-- are not gossip messages, errors, resets, and a peer that lies about the node. The node must
-- keep serving throughout, move each broken peer offline as PROTOCOL.md says (a failure, a
-- retry 3 s later, a second failure), and take from a liar only what the merge rules allow.

local cluster = require "support.cluster"
local cjson = require "cjson"

local fixtures = (os.getenv("SHAZBOT_SOURCE") or ".") .. "/spec/lua/fixtures/"

local function now_ms() return math.floor(cluster.now() * 1000) end

-- Starts a bad peer; returns { url, log }.
local function start_bad_peer(mode, node_url)
  local dir = cluster.tempdir()
  local port = cluster.free_port()
  local peer = { mode = mode, url = string.format("http://127.0.0.1:%d/", port), log = dir .. "/requests.log" }
  cluster.spawn_program("lua5.4", string.format("'%sbad_peer.lua' %d %s '%s' '%s'", fixtures, port, mode, peer.log,
    node_url or ""), {}, dir)
  cluster.wait_until(5, "the " .. mode .. " peer to listen", function()
    local socket = require "socket"
    local c = socket.connect("127.0.0.1", port)
    if c then c:close() end
    return c ~= nil
  end)
  return peer
end

-- The gossip bodies a bad peer received, decoded, and when (seconds since the epoch).
local function received(peer)
  local bodies, times = {}, {}
  local f = io.open(peer.log)
  if not f then return bodies, times end
  for line in f:lines() do
    local entry = cjson.decode(line)
    if entry.body ~= "" then
      bodies[#bodies + 1] = cjson.decode(entry.body)
      times[#times + 1] = entry.at
    end
  end
  f:close()
  return bodies, times
end

-- Makes `node` know `peer` as online, as a gossip message from elsewhere would.
local function introduce(node, peer)
  local record = { baseUrl = peer.url, monitor = false, lastUpdate = now_ms() }
  local status = cluster.request("POST", node.url .. "clustershazbot/gossip", cluster.gossip_body({ record }),
    { Authorization = cluster.secret })
  assert.are.equal(200, status)
end

-- A node that gossips twice a second and does nothing else on its own.
-- The protocol's timings (5 s timeout, 3 s retry, offline after the second failure), set:
-- at a 0.5 s interval they would otherwise follow the interval. No probes of offline peers,
-- so that a peer once offline is left alone and its tries can be counted.
local BUSY = { SHAZBOT_GOSSIP_INTERVAL = "0.5", SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "3600",
               SHAZBOT_MAX_BODY = "1048576", SHAZBOT_GOSSIP_TIMEOUT = "5", SHAZBOT_GOSSIP_RETRY = "3",
               SHAZBOT_SUSPICION_WINDOW = "0", SHAZBOT_POLICY = fixtures .. "no_probes.lua" }

describe("a node gossiping with a bad peer", function()
  after_each(function() cluster.cleanup() end)

  it("moves every kind of broken peer offline after two failures, and answers at once meanwhile", function()
    local store = cluster.start_store()
    local cases = {}
    for _, mode in ipairs({ "silent", "trickle", "garbage", "not_gossip", "error", "reset" }) do
      local node = cluster.start_node(store, BUSY)
      local peer = start_bad_peer(mode)
      introduce(node, peer)
      cases[#cases + 1] = { node = node, peer = peer, introduced = cluster.now() }
    end
    -- A peer whose answer is over the body limit did answer: alive, so no verdict (a state
    -- too large for its peers must not cut healthy links; README, "Failures, partitions and
    -- a bounded state"). It stays online, tried once a round, never retried.
    local huge = { node = cluster.start_node(store, BUSY), peer = start_bad_peer("huge") }
    introduce(huge.node, huge.peer)

    -- A silent or trickling peer costs two 5 s timeouts and the 3 s wait between them.
    local slowest = 0
    cluster.wait_until(40, "every bad peer to be offline at its node", function()
      local all_offline = true
      for _, c in ipairs(cases) do
        local t0 = cluster.now()
        local view = cluster.view(c.node)
        slowest = math.max(slowest, cluster.now() - t0)
        if view.online[c.peer.url] then
          all_offline = false
        else
          assert.is_table(view.offline[c.peer.url], c.peer.mode .. " peer neither online nor offline")
          c.offline_after = c.offline_after or cluster.now() - c.introduced
        end
      end
      cluster.sleep(0.1)
      return all_offline
    end)
    -- The loop never waits on a peer: every list request was answered promptly.
    assert.is_true(slowest < 1, string.format("a list request took %.2f s", slowest))
    print(string.format("# slowest list request while the bad peers were tried: %.3f s", slowest))
    for _, c in ipairs(cases) do
      -- Two tries, 3 s apart: not offline at the first failure, and left alone once offline.
      local tries = #received(c.peer)
      assert.are.equal(2, tries, c.peer.mode .. " peer was tried " .. tries .. " time(s)")
      -- And a peer that does not answer is given the protocol's 5 s each time.
      local least = (c.peer.mode == "silent" or c.peer.mode == "trickle") and 5 + 3 + 5 or 3
      assert.is_true(c.offline_after >= least - 0.1,
        string.format("%s peer offline after %.1f s, not after %d s", c.peer.mode, c.offline_after, least))
      assert.is_nil(cluster.exit_status(c.node.proc))
      print(string.format("# %s peer: offline after %.1f s, %d tries", c.peer.mode, c.offline_after, tries))
    end
    local view = cluster.view(huge.node)
    assert.is_table(view.online[huge.peer.url], "the peer with a huge answer was moved offline")
    assert.is_true(#received(huge.peer) >= 2)
    assert.is_nil(cluster.exit_status(huge.node.proc))
  end)

  it("says goodbye to every peer at once on SIGTERM, silent ones included, and exits in bounded time", function()
    local store = cluster.start_store()
    local quiet = { SHAZBOT_GOSSIP_INTERVAL = "3600", SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "3600" }
    local node = cluster.start_node(store, quiet)
    local witness = cluster.start_node(store, quiet)
    introduce(node, witness)
    local silent = {}
    for i = 1, 4 do
      silent[i] = start_bad_peer("silent")
      introduce(node, silent[i])
    end
    local socket = require "socket"
    local signalled = socket.gettime()
    cluster.signal(node.proc, "TERM")
    -- One after the other, the four silent peers would cost 5 s each.
    cluster.wait_until(8, "the node to exit", function() return cluster.exit_status(node.proc) end)
    assert.are.equal(0, cluster.exit_status(node.proc), cluster.read_log(node.proc))
    local took = socket.gettime() - signalled
    assert.is_true(took < 8, string.format("exited %.1f s after SIGTERM", took))
    print(string.format("# exited %.1f s after SIGTERM with 4 silent peers", took))
    for i, peer in ipairs(silent) do
      local bodies, times = received(peer)
      assert.are.equal(1, #bodies, "silent peer " .. i .. " got " .. #bodies .. " goodbyes")
      assert.is_true(times[1] - signalled < 2, string.format("silent peer %d heard after %.1f s", i, times[1] - signalled))
      local gone
      for _, r in ipairs(bodies[1].offline) do gone = gone or r.baseUrl == node.url end
      assert.is_true(gone, "the goodbye does not list the node offline")
    end
    assert.is_table(cluster.view(witness).offline[node.url], "the good peer did not hear the goodbye")
  end)

  it("refutes a peer that says it is offline, and skips the entries the rules refuse", function()
    local store = cluster.start_store()
    local node = cluster.start_node(store, BUSY)
    local liar = start_bad_peer("liar", node.url)
    local before = now_ms()
    introduce(node, liar)

    -- The lie is an offline record of the node 60 s in the future: a newer lastUpdate than the
    -- node's own. The node must answer it by going on as online with a newer one still.
    local bodies = cluster.wait_until(20, "the liar to hear from the node three times", function()
      local b = received(liar)
      return #b >= 3 and b
    end)
    local own
    for _, r in ipairs(bodies[#bodies].online) do
      if r.baseUrl == node.url then own = r end
    end
    assert.is_table(own, "the node does not list itself online in its gossip")
    assert.is_true(own.lastUpdate > before + 60 * 1000, "lastUpdate " .. own.lastUpdate .. " does not refute the lie")
    for _, r in ipairs(bodies[#bodies].offline) do assert.are_not.equal(node.url, r.baseUrl) end

    local view = cluster.view(node)
    assert.is_table(view.online[node.url])
    assert.is_table(view.online[liar.url], "a peer whose answers are good stays online")
    assert.is_nil(view.online["not a url"])
    assert.is_nil(view.online["http://127.0.0.1:9/future/"])
    local _, happy = cluster.json("GET", node.url .. "happy")
    local entry = happy.extensions.clustershazbot
    assert.is_true(entry.refutations >= 1, "refutations " .. tostring(entry.refutations))
    assert.is_true(entry.skippedEntries >= 2, "skippedEntries " .. tostring(entry.skippedEntries))
  end)
end)
