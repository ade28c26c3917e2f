-- The embedded master-list store: its HTTP contract, no lost updates when many nodes announce
-- at once, and a file that always parses, whenever the store is killed.

local cluster = require "support.cluster"
local cjson = require "cjson"

local function read_list(path)
  local f = io.open(path)
  if not f then return nil, "no file" end
  local text = f:read("a")
  f:close()
  local ok, list = pcall(cjson.decode, text)
  if not ok or type(list) ~= "table" or type(list.online) ~= "table" then return nil, text end
  return list
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
    for _, bad in ipairs({ "", "{}", "[]", "not json", '{"online":[{"baseUrl":5}]}' }) do
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
    assert.are.equal(1, #read_list(store.file).online)

    -- A restarted store serves what the file holds.
    cluster.signal(store.proc, "TERM")
    cluster.wait_exit(store.proc, 10)
    local again = cluster.start_store(store.file:match("^(.*)/"), store.port)
    assert.are.equal(list, (select(2, cluster.request("GET", again.url))))
  end)

  it("loses no online node while 8 nodes announce at once (sampled for 20 s)", function()
    local store = cluster.start_store()
    local nodes = {}
    for i = 1, 8 do nodes[i] = cluster.start_node(store, { SHAZBOT_MASTER_ANNOUNCE_MINIMUM = "1", SHAZBOT_MASTER_ANNOUNCE_INTERVAL = "1" }) end
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
    for round = 1, 12 do
      cluster.sleep(0.1 + math.random() * 0.4) -- a sampling period: kill at a random moment
      cluster.signal(store.proc, "KILL")
      cluster.wait_exit(store.proc, 10)
      local list, text = read_list(store.file)
      assert.is_table(list, "round " .. round .. ": the file does not parse: " .. tostring(text))
      store = cluster.start_store(dir, store.port)
    end
  end)
end)
