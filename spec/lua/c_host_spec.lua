-- A C program built against the installed library with pkg-config runs a node that joins a
-- cluster and leaves it on SIGTERM.

local cluster = require "support.cluster"

describe("a C host", function()
  teardown(function() cluster.cleanup() end)

  it("builds with pkg-config against the installed library and joins a cluster", function()
    local dir = cluster.tempdir()
    local c_host = cluster.build_c_host(dir)

    local store = cluster.start_store()
    local node = cluster.start_node(store)
    local port = cluster.free_port()
    local host = { url = string.format("http://127.0.0.1:%d/", port) }
    host.proc = cluster.spawn_program(c_host, "", cluster.node_env(port, store), dir)
    cluster.wait_until(20, "the C host and the node to list each other online", function()
      local ok, host_view = pcall(cluster.view, host)
      return ok and host_view.online[node.url] and cluster.view(node).online[host.url]
    end)
    cluster.signal(host.proc, "TERM")
    assert.are.equal(0, cluster.wait_exit(host.proc, 30))
    cluster.wait_until(5, "the node to list the C host offline", function()
      return cluster.view(node).offline[host.url]
    end)
  end)
end)
