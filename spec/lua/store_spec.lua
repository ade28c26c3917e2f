-- The embedded master-list store: its HTTP contract, no lost updates when many nodes announce
-- at once, and a file that always parses, whenever the store is killed. Then the nodes' side:
-- If-Match on announcements, and a merge and a new attempt (bounded) on 412.

local cluster = require "support.cluster"
local cjson = require "cjson"

local function read_file(path)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

local function read_list(path)
  local text = read_file(path)
  if not text then return nil, "no file" end
  local ok, list = pcall(cjson.decode, text)
  if not ok or type(list) ~= "table" or type(list.online) ~= "table" then return nil, text end
  return list
end

local fixtures = (os.getenv("SHAZBOT_SOURCE") or ".") .. "/spec/lua/fixtures/"

-- Starts spec/lua/fixtures/scripted_store.lua in `mode`; returns { url, log }.
local function start_scripted_store(mode)
  local dir = cluster.tempdir()
  local port = cluster.free_port()
  local scripted = { url = string.format("http://127.0.0.1:%d/", port), log = dir .. "/requests.log" }
  cluster.spawn_program("lua5.4", string.format("'%sscripted_store.lua' %d '%s' %s", fixtures, port, scripted.log, mode),
    {}, dir)
  cluster.wait_until(5, "the scripted store", function() return cluster.request("GET", scripted.url) == 200 end)
  return scripted
end

-- The requests a scripted store logged, oldest first.
local function logged_requests(scripted)
  local requests = {}
  for line in (read_file(scripted.log) or ""):gmatch("[^\n]+") do
    requests[#requests + 1] = cjson.decode(line)
  end
  return requests
end

local function puts_of(requests)
  local puts = {}
  for _, r in ipairs(requests) do
    if r.method == "PUT" then puts[#puts + 1] = r end
  end
  return puts
end

describe("the master-list store", function()
  after_each(function() cluster.cleanup() end)

  it("serves GET and PUT with ETags, If-Match, auth and validation", function()
    local store = cluster.start_store()
    local status, body, headers = cluster.request("GET", store.url)
    assert.are.equal(200, status)
    assert.are.same({ online = {} }, cjson.decode(body))
    local etag = headers.etag
    assert.is_string(etag)

    local list = '{"online":[{"baseUrl":"http://127.0.0.1:1/","monitor":false,"lastUpdate":0}]}'
    local auth = { Authorization = cluster.update_auth }
    assert.are.equal(401, (cluster.request("PUT", store.url, list, { Authorization = "wrong" })))
    assert.are.equal(401, (cluster.request("PUT", store.url, list)))
    for _, bad in ipairs({ "", "{}", "[]", "not json", '{"online":[5]}' }) do
      local s, answer = cluster.json("PUT", store.url, bad, auth)
      assert.are.equal(400, s, bad)
      assert.is_string(answer.error)
    end
    assert.is_nil(io.open(store.file)) -- nothing accepted yet, nothing written

    local h = { Authorization = cluster.update_auth, ["If-Match"] = etag }
    local s, _, put_headers = cluster.request("PUT", store.url, list, h)
    assert.are.equal(200, s)
    assert.are_not.equal(etag, put_headers.etag)
    assert.are.equal(412, (cluster.request("PUT", store.url, '{"online":[]}', h))) -- stale ETag
    assert.are.equal(list, (select(2, cluster.request("GET", store.url))))
    assert.are.equal(list, read_file(store.file))

    -- Refused PUTs leave the file and the served list as they were, byte for byte.
    for _, bad in ipairs({ "not json", '{"online":{}}', '{"online":["http://x/"]}' }) do
      assert.are.equal(400, (cluster.request("PUT", store.url, bad, auth)), bad)
    end
    assert.are.equal(401, (cluster.request("PUT", store.url, '{"online":[]}', { Authorization = "wrong" })))
    assert.are.equal(412, (cluster.request("PUT", store.url, '{"online":[]}', h)))
    assert.are.equal(405, (cluster.request("POST", store.url, list, auth)))
    assert.are.equal(list, read_file(store.file))
    local _, served, served_headers = cluster.request("GET", store.url .. "any/path.json")
    assert.are.equal(list, served)
    assert.are.equal(put_headers.etag, served_headers.etag)

    -- Without If-Match (a store client that knows nothing of ETags), or with "*", a PUT is
    -- unconditional.
    local second = '{"online":[{"baseUrl":"http://127.0.0.1:2/","monitor":true,"lastUpdate":1}]}'
    assert.are.equal(200, (cluster.request("PUT", store.url, second, auth)))
    assert.are.equal(second, read_file(store.file))
    assert.are.equal(200, (cluster.request("PUT", store.url, list, { Authorization = cluster.update_auth, ["If-Match"] = "*" })))
    assert.are.equal(list, read_file(store.file))

    -- A restarted store serves what the file holds.
    cluster.signal(store.proc, "TERM")
    cluster.wait_exit(store.proc, 10)
    local again = cluster.start_store(store.file:match("^(.*)/"), store.port)
    assert.are.equal(list, (select(2, cluster.request("GET", again.url))))
  end)

  it("loses no online node while 8 nodes announce at once (sampled for 20 s)", function()
    local store = cluster.start_store()
    -- Membership spreads through the master list only (no gossip rounds): an update lost there
    -- is not repaired behind the test's back. The nodes start together, without waiting for
    -- each other, so that their first announcements (1 to 2 s after start) overlap. Sampling
    -- sees only the losses that last until a sample: the If-Match mechanism that prevents
    -- them is checked step by step by "a node announcing to the master list" below.
    local env = { SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "1", SHAZBOT_MASTER_ANNOUNCE_INTERVAL = "1",
                  SHAZBOT_GOSSIP_INTERVAL = "3600" }
    for _ = 1, 8 do
      local port = cluster.free_port()
      cluster.spawn("serve", cluster.node_env(port, store, env))
    end
    local seen, samples, puts_seen = {}, 0, {}
    local deadline = cluster.now() + 20
    while cluster.now() < deadline do
      local status, body, headers = cluster.request("GET", store.url)
      assert.are.equal(200, status)
      local present = {}
      for _, r in ipairs(cjson.decode(body).online) do present[r.baseUrl] = true end
      for url in pairs(seen) do
        assert.is_true(present[url] == true, url .. " disappeared from the master list")
      end
      for url in pairs(present) do seen[url] = true end
      puts_seen[headers.etag] = true
      samples = samples + 1
      cluster.sleep(0.1)
    end
    local versions = 0
    for _ in pairs(puts_seen) do versions = versions + 1 end
    local count = 0
    for _ in pairs(seen) do count = count + 1 end
    print(string.format("# %d samples, %d versions of the list, %d nodes listed", samples, versions, count))
    assert.are.equal(8, count)
    assert.is_true(versions > 8) -- the nodes did write, many times
  end)

  it("leaves a file that parses when killed with SIGKILL in the middle of writes", function()
    local dir = cluster.tempdir()
    local store = cluster.start_store(dir)
    for _ = 1, 8 do cluster.start_node(store, { SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "0.2", SHAZBOT_MASTER_ANNOUNCE_INTERVAL = "0.3" }) end
    cluster.wait_until(10, "the first writes", function() return read_list(store.file) end)
    local function current_etag()
      local status, _, headers = cluster.request("GET", store.url)
      return status == 200 and headers.etag
    end
    for round = 1, 12 do
      -- The nodes are writing again: the list changed since this store started.
      local started_with = current_etag()
      cluster.wait_until(15, "a write to the restarted store (round " .. round .. ")", function()
        local etag = current_etag()
        return etag and etag ~= started_with
      end)
      cluster.sleep(math.random() * 0.4) -- then a random moment among the writes
      cluster.signal(store.proc, "KILL")
      cluster.wait_exit(store.proc, 10)
      local list, text = read_list(store.file)
      assert.is_table(list, "round " .. round .. ": the file does not parse: " .. tostring(text))
      -- The store's own check: it refuses to start on a file that is not a list.
      store = cluster.start_store(dir, store.port)
    end
  end)

  it("removes on start the temp files of stores that were killed while writing", function()
    local dir = cluster.tempdir()
    -- A process that has exited: its pid is free (reuse within this test is unlikely, and
    -- would only keep the file, failing the test rather than hiding a bug).
    local proc = cluster.spawn_program("true", "")
    local dead_pid = proc.pid
    cluster.wait_exit(proc, 10)
    local stale = dir .. "/master-list.json.tmp." .. dead_pid
    local living = dir .. "/master-list.json.tmp.1" -- pid 1 is alive: not ours to remove
    for _, path in ipairs({ stale, living }) do
      local f = assert(io.open(path, "w"))
      f:write('{"online":[')
      f:close()
    end
    local store = cluster.start_store(dir)
    assert.is_nil(io.open(stale), stale .. " is still there")
    local f = assert(io.open(living), living .. " was removed")
    f:close()
    assert.truthy(cluster.read_log(store.proc):find("removed master-list.json.tmp." .. dead_pid, 1, true))
  end)
end)

-- The store serves through the node's own HTTP server (core/http_server.c): what evhttp refuses
-- itself is answered in JSON, and --listen takes every address form SHAZBOT_LISTEN takes.
describe("the master-list store's listener", function()
  local store
  setup(function() store = cluster.start_store() end)
  teardown(function() cluster.cleanup() end)

  local STORE_MAX_BODY = 64 * 1024 * 1024
  for _, case in ipairs({
    { "a body over its limit", cluster.raw_request("PUT", "/", string.rep(" ", STORE_MAX_BODY + 1),
        { Authorization = cluster.update_auth }), 413, "limit of " .. STORE_MAX_BODY .. " bytes" },
    { "an unparseable request line", "GARBAGE\r\n\r\n", 400, "malformed HTTP request" },
    { "an unsupported method", "TRACE / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 501, "use GET or PUT" },
  }) do
    it("answers " .. case[1] .. " with " .. case[3] .. " and a JSON error, then closes", function()
      local before = select(2, cluster.request("GET", store.url))
      local status, headers, answer, body, conn = cluster.raw_exchange(store.port, case[2])
      assert.are.equal(case[3], status, body)
      assert.is_table(answer, "not JSON: " .. body)
      assert.truthy(answer.error:find(case[4], 1, true), answer.error)
      assert.are.equal("application/json", headers["content-type"])
      assert.are.equal("close", headers["connection"])
      cluster.wait_until(5, "the store to close the connection", function() return cluster.closed_by_peer(conn) end)
      conn:close()
      assert.are.equal(before, select(2, cluster.request("GET", store.url)))
    end)
  end

  it("refuses a --listen that is not HOST:PORT, [IPv6]:PORT or :PORT with status 2, naming it", function()
    for _, bad in ipairs({ "127.0.0.1", "::1:" .. store.port, "[::1:80", "127.0.0.1:0", "127.0.0.1:http", "" }) do
      -- Under `timeout`: a store that took the value would serve until killed (status 124).
      local status, out = cluster.sh(string.format("timeout 5 %s store --listen '%s' --file %s/x.json --auth a",
        cluster.bin, bad, cluster.tempdir()))
      assert.are.equal(2, status, bad .. ": " .. out)
      assert.truthy(out:find('listen: "' .. bad .. '" is not host:port', 1, true), out)
    end
  end)

  if not cluster.has_ipv6_loopback() then
    pending("serves on [::1], and on every interface with :PORT (no IPv6 loopback on this machine)")
  else
    it("serves on [::1] alone with --listen [::1]:PORT", function()
      local v6 = cluster.start_store(nil, nil, { host = "[::1]" })
      assert.are.same({ online = {} }, select(2, cluster.json("GET", v6.url)))
      assert.is_nil((cluster.request("GET", "http://127.0.0.1:" .. v6.port .. "/")))
    end)

    it("serves on every interface, IPv4 and IPv6, with --listen :PORT", function()
      local every = cluster.start_store(nil, nil, { host = "" })
      for _, url in ipairs({ every.url, "http://[::1]:" .. every.port .. "/" }) do
        assert.are.same({ online = {} }, select(2, cluster.json("GET", url)), url)
      end
      assert.truthy(cluster.read_log(every.proc):find("and [::]:" .. every.port, 1, true), cluster.read_log(every.proc))
    end)
  end
end)

-- The node's side of the store's contract, against a store scripted to conflict.
describe("a node announcing to the master list", function()
  after_each(function() cluster.cleanup() end)

  it("sends If-Match, and on 412 reads, merges and writes again", function()
    local scripted = start_scripted_store("conflict-once")
    local node = cluster.start_node(scripted)
    local requests = cluster.wait_until(20, "a PUT accepted after the 412", function()
      local r = logged_requests(scripted)
      local puts = puts_of(r)
      return #puts >= 2 and puts[2].status == 200 and r
    end)
    local puts = puts_of(requests)
    assert.are.equal(412, puts[1].status)
    assert.are.equal('"v0"', puts[1].if_match) -- the ETag of the list it had read
    assert.are.equal('"v1"', puts[2].if_match) -- read again after the 412
    local listed = {}
    for _, r in ipairs(cjson.decode(puts[2].body).online) do listed[r.baseUrl] = true end
    assert.is_true(listed["http://127.0.0.1:1/intruder/"], puts[2].body) -- merged, not overwritten
    assert.is_true(listed[node.url], puts[2].body)
    -- Between the two PUTs, the node read the list again.
    local first, second
    for i, r in ipairs(requests) do
      if r == puts[1] then first = i elseif r == puts[2] then second = i end
    end
    local reread = false
    for i = first + 1, second - 1 do reread = reread or requests[i].method == "GET" end
    assert.is_true(reread)
  end)

  it("gives up an announcement after a bounded number of 412s", function()
    local scripted = start_scripted_store("always-conflict")
    -- Announcements 3 s apart: the conflicts of one announcement come in a burst before that.
    cluster.start_node(scripted, { SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "3", SHAZBOT_MASTER_ANNOUNCE_INTERVAL = "0" })
    local burst = cluster.wait_until(30, "a pause after the first burst of PUTs", function()
      local puts = puts_of(logged_requests(scripted))
      for i = 2, #puts do
        if puts[i].t - puts[i - 1].t >= 2 then return i - 1 end
      end
    end)
    assert.is_true(burst >= 2 and burst <= 10, "PUTs in one announcement: " .. burst)
  end)

  it("sends no If-Match to a store without ETags", function()
    local scripted = start_scripted_store("no-etag")
    local node = cluster.start_node(scripted)
    local put = cluster.wait_until(20, "an announcement", function() return puts_of(logged_requests(scripted))[1] end)
    assert.is_nil(put.if_match)
    assert.are.equal(200, put.status)
    assert.are.equal(node.url, cjson.decode(put.body).online[1].baseUrl)
  end)
end)
