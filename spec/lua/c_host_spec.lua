-- A C program built against the installed library with pkg-config runs a node that joins a
-- cluster and leaves it on SIGTERM.

local cluster = require "support.cluster"

local sh = cluster.sh

describe("a C host", function()
  teardown(function() cluster.cleanup() end)

  it("builds with pkg-config against the installed library and joins a cluster", function()
    local build = assert(os.getenv("SHAZBOT_BUILD"), "SHAZBOT_BUILD must name the build tree")
    local source = assert(os.getenv("SHAZBOT_SOURCE"), "SHAZBOT_SOURCE must name the source tree")
    local dir = cluster.tempdir()
    local prefix = dir .. "/prefix"
    local status, out = sh(string.format("cmake --install '%s' --prefix '%s'", build, prefix))
    assert.are.equal(0, status, out)
    local pc = "PKG_CONFIG_PATH='" .. prefix .. "/lib/pkgconfig' pkg-config"
    -- A library built with the sanitizers needs a program built with them.
    local sanitize = os.getenv("SHAZBOT_SANITIZE") == "ON" and "-fsanitize=address,undefined" or ""
    status, out = sh(string.format("cc -Wall -Wextra -Werror %s '%s/examples/c-host/main.c' -o '%s/c-host' $(%s --cflags --libs clustershazbot) -Wl,-rpath,'%s/lib'",
      sanitize, source, dir, pc, prefix))
    assert.are.equal(0, status, out)

    local store = cluster.start_store()
    local node = cluster.start_node(store)
    local port = cluster.free_port()
    local host = { url = string.format("http://127.0.0.1:%d/", port) }
    host.proc = cluster.spawn_program(dir .. "/c-host", "", cluster.node_env(port, store), dir)
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
