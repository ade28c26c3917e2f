-- A real cluster on loopback: five `clustershazbot serve` processes and a master-list store.
-- They must find each other, agree on a node killed with SIGKILL, hear the goodbye of a node
-- stopped with SIGTERM, and leave the online nodes in the master list.

local cluster = require "support.cluster"
local cjson = require "cjson"

local function all_see(nodes, predicate)
  for _, node in ipairs(nodes) do
    if not predicate(cluster.view(node), node) then return false end
  end
  return true
end

local function lists_offline(url)
  return function(view) return view.offline[url] ~= nil and view.online[url] == nil end
end

local function online_set(view)
  local urls = {}
  for url in pairs(view.online) do urls[#urls + 1] = url end
  table.sort(urls)
  return table.concat(urls, " ")
end

describe("a five-node cluster", function()
  local store, nodes

  setup(function()
    store = cluster.start_store()
    nodes = {}
    for i = 1, 5 do nodes[i] = cluster.start_node(store) end
  end)

  teardown(function() cluster.cleanup() end)

  it("converges, agrees on failures and goodbyes, and keeps the master list", function()
    local expected = {}
    for i, node in ipairs(nodes) do expected[i] = node.url end
    table.sort(expected)
    expected = table.concat(expected, " ")

    -- 1. All five list all five online within 5 s (1-second gossip interval).
    local t0 = cluster.now()
    cluster.wait_until(5, "all five nodes to list all five online", function()
      return all_see(nodes, function(view) return online_set(view) == expected end)
    end)
    print(string.format("# converged in %.2f s", cluster.now() - t0))

    -- 2. kill -9 one: every survivor lists it offline within 15 s, and keeps it there 10 s.
    local killed = table.remove(nodes, 1)
    cluster.signal(killed.proc, "KILL")
    t0 = cluster.now()
    cluster.wait_until(15, "every survivor to list the killed node offline", function()
      return all_see(nodes, lists_offline(killed.url))
    end)
    print(string.format("# killed node offline everywhere after %.2f s", cluster.now() - t0))
    local watch_until = cluster.now() + 10
    while cluster.now() < watch_until do
      assert.is_true(all_see(nodes, lists_offline(killed.url)), "a survivor brought the killed node back online")
      cluster.sleep(0.2)
    end

    -- 3. SIGTERM another: it says goodbye, every survivor lists it offline within 3 s, and it
    -- exits with status 0.
    local stopped = table.remove(nodes, 1)
    cluster.signal(stopped.proc, "TERM")
    t0 = cluster.now()
    cluster.wait_until(3, "every survivor to list the stopped node offline", function()
      return all_see(nodes, lists_offline(stopped.url))
    end)
    print(string.format("# stopped node offline everywhere after %.2f s", cluster.now() - t0))
    assert.are.equal(0, cluster.wait_exit(stopped.proc, 30))

    -- 4. The master list ends up holding exactly the online nodes.
    local survivors = {}
    for i, node in ipairs(nodes) do survivors[i] = node.url end
    table.sort(survivors)
    survivors = table.concat(survivors, " ")
    cluster.wait_until(10, "the master list to hold the three online nodes", function()
      local f = io.open(store.file)
      if not f then return false end
      local ok, list = pcall(cjson.decode, f:read("a"))
      f:close()
      if not ok then return false end
      local urls = {}
      for i, r in ipairs(list.online) do urls[i] = r.baseUrl end
      table.sort(urls)
      return table.concat(urls, " ") == survivors
    end)
  end)
end)
