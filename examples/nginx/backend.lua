-- A tiny backend for the service-discovery example: answers every HTTP request with its own
-- name, so that one can see which member nginx sent a request to.
--
--   lua5.4 examples/nginx/backend.lua NAME HOST PORT      (needs lua-socket)
--
-- One request per connection (nginx speaks HTTP/1.0 to an upstream unless told otherwise),
-- served one at a time: enough for an example, and nothing a real backend should imitate.

local socket = require "socket"

local name, host, port = arg[1], arg[2], tonumber(arg[3])
if not (name and host and port) then
  io.stderr:write("usage: lua5.4 backend.lua NAME HOST PORT\n")
  os.exit(2)
end

local server = assert(socket.bind(host, port))
io.stdout:write(string.format("backend %s listening on %s:%d\n", name, host, port))
io.stdout:flush()

local body = name .. "\n"
local answer = table.concat({
  "HTTP/1.1 200 OK",
  "Content-Type: text/plain",
  "Content-Length: " .. #body,
  "Connection: close",
  "", body }, "\r\n")

while true do
  local client = server:accept()
  if client then
    client:settimeout(5) -- a client that stalls holds the backend for 5 s at most
    -- The request line and headers; a body, which this backend ignores, is left unread.
    repeat
      local line = client:receive("*l")
    until not line or line == ""
    client:send(answer)
    client:close()
  end
end
