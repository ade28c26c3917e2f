-- One store session under valgrind: reads, an accepted PUT and refused ones (secret, If-Match,
-- body), requests evhttp refuses itself (their HTML pages rewritten into JSON), a client still
-- connected at SIGTERM; the store must stop with no memory error and nothing definitely or
-- indirectly lost.

local cluster = require "support.cluster"
local cjson = require "cjson"

describe("a store under valgrind", function()
  teardown(function() cluster.cleanup() end)

  it("runs a session with no memory error and no leak", function()
    local dir = cluster.tempdir()
    local vlog = dir .. "/valgrind.log"
    local store = cluster.start_store(dir, nil, { wrapper = cluster.valgrind_command(vlog) })
    local read, _, headers = cluster.request("GET", store.url)
    assert.are.equal(200, read)
    local list = '{"online":[{"baseUrl":"http://127.0.0.1:1/","monitor":false,"lastUpdate":0}]}'
    local auth = { Authorization = cluster.update_auth, ["If-Match"] = headers.etag }
    assert.are.equal(200, (cluster.request("PUT", store.url, list, auth)))
    assert.are.equal(412, (cluster.request("PUT", store.url, list, auth))) -- the ETag it sent is stale now
    assert.are.equal(401, (cluster.request("PUT", store.url, list, { Authorization = "wrong" })))
    assert.are.equal(400, (cluster.request("PUT", store.url, "{not json", { Authorization = cluster.update_auth })))
    assert.are.equal(405, (cluster.request("POST", store.url, list)))
    assert.are.equal(list, select(2, cluster.request("GET", store.url)))
    for _, refused in ipairs({ { "GARBAGE\r\n\r\n", 400 }, { "TRACE / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 501 } }) do
      local code, _, answer, body, conn = cluster.raw_exchange(store.port, refused[1])
      conn:close()
      assert.are.equal(refused[2], code, body)
      assert.is_string(answer and answer.error, body)
    end
    -- A kept-alive client still connected when the store stops: its connection is freed then.
    local kept = assert(require("socket").connect("127.0.0.1", store.port))
    kept:settimeout(30)
    assert(kept:send(cluster.raw_request("GET", "/")))
    assert.are.equal(list, select(3, cluster.read_answer(kept)))
    local status, report, leaks = cluster.stop_under_valgrind(store.proc, vlog)
    kept:close()
    assert.are.equal(0, status, report)
    assert.truthy(report:find("ERROR SUMMARY: 0 errors", 1, true), report)
    assert.are.same(cjson.decode(list), cjson.decode(assert(io.open(store.file)):read("a")))
    print("# " .. leaks)
  end)
end)
