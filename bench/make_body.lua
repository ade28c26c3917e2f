-- Writes a gossip message of N records to stdout. The baseUrls are loopback ports nobody
-- listens on: the benchmark node never gossips (its interval is an hour), and if it did, no
-- traffic would leave the machine.
local n = assert(tonumber(arg[1]), "usage: make_body.lua RECORDS")
local now = os.time() * 1000
local parts = {}
for i = 1, n do
  parts[i] = string.format('{"baseUrl":"http://127.0.%d.%d:%d/","monitor":%s,"lastUpdate":%d}',
    (i // 250) % 250 + 1, i % 250 + 1, 20000 + i % 30000, i % 50 == 0 and "true" or "false", now - i)
end
io.write('{"message":"gossip","online":[', table.concat(parts, ","), '],"offline":[]}')
