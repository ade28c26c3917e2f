-- Helpers of bench/scale_bench.sh, one subcommand each, in plain Lua 5.4 (no modules), so
-- that the shell script forks one process for a thousand nodes' files instead of a thousand.
--
--   master FILE BASE_PORT N        the master list: every node online, lastUpdate 0, as an
--                                  operator writes it (PROTOCOL.md, merge rule 1)
--   agree DIR PORTS EXPECTED DEAD  of the list answers saved in DIR/<port>.json (one per port
--                                  listed in the file PORTS), how many list exactly EXPECTED
--                                  nodes online and none of the URLs of the file DEAD; prints
--                                  "<agreeing> <asked>"
--   ticks PIDS                     utime + stime of the processes listed, in clock ticks
--   pss PIDS                       mean and largest Pss of smaps_rollup, in KB
--   sizes FILES                    the size of each file listed, one a line
--   bytes FILES OFFSETS            the gossip exchanges logged (debug) in each file past its
--                                  offset: "<exchanges> <wire bytes> <plain bytes>"
--   sim FILE                       convergence and detection seconds of a `simulate --json`
--   runs FILE                      of lines "<converge> <detect> <bytes>" (NA: not reached), the
--                                  medians and the detections' range: "<c> <d> <d min> <d max> <b>"
local command = arg[1]

local function lines(path)
  local out = {}
  for line in io.lines(path) do
    if line ~= "" then out[#out + 1] = line end
  end
  return out
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

if command == "master" then
  local path, base, n = arg[2], tonumber(arg[3]), tonumber(arg[4])
  local records = {}
  for i = 1, n do
    records[i] = string.format('{"baseUrl":"http://127.0.0.1:%d/","monitor":false,"lastUpdate":0}', base + i)
  end
  local f = assert(io.open(path, "w"))
  f:write('{"online":[', table.concat(records, ","), "]}")
  f:close()

elseif command == "agree" then
  local dir, expected = arg[2], tonumber(arg[4])
  local dead = lines(arg[5])
  local agreeing, asked = 0, 0
  for _, port in ipairs(lines(arg[3])) do
    asked = asked + 1
    -- Without the control secret the list holds the online records only, so counting its
    -- baseUrls is counting what the node lists online: no JSON parser needed for 80 MB a sweep.
    local body = slurp(dir .. "/" .. port .. ".json")
    if body and body:sub(1, 1) == "{" then
      local count, at = 0, 1
      while true do
        local found = body:find('"baseUrl"', at, true)
        if not found then break end
        count, at = count + 1, found + 9
      end
      local ok = count == expected
      for i = 1, #dead do
        if not ok then break end
        if body:find('"' .. dead[i] .. '"', 1, true) then ok = false end
      end
      if ok then agreeing = agreeing + 1 end
    end
  end
  print(agreeing .. " " .. asked)

elseif command == "ticks" then
  local total = 0
  for _, pid in ipairs(lines(arg[2])) do
    local stat = slurp("/proc/" .. pid .. "/stat")
    if stat then
      -- Fields after the command name (which is in parentheses): state is field 3, utime 14.
      local rest = stat:match("%) (.*)$")
      local fields = {}
      for word in rest:gmatch("%S+") do fields[#fields + 1] = word end
      total = total + tonumber(fields[12]) + tonumber(fields[13])
    end
  end
  print(total)

elseif command == "pss" then
  local sum, count, largest = 0, 0, 0
  for _, pid in ipairs(lines(arg[2])) do
    local rollup = slurp("/proc/" .. pid .. "/smaps_rollup")
    local kb = rollup and tonumber(rollup:match("\nPss:%s+(%d+) kB"))
    if kb then
      sum, count = sum + kb, count + 1
      if kb > largest then largest = kb end
    end
  end
  print(string.format("%.0f %d", count > 0 and sum / count or 0, largest))

elseif command == "sizes" then
  for _, path in ipairs(lines(arg[2])) do
    local f = io.open(path, "rb")
    print(f and f:seek("end") or 0)
    if f then f:close() end
  end

elseif command == "bytes" then
  local files, offsets = lines(arg[2]), lines(arg[3])
  local exchanges, wire, plain = 0, 0, 0
  for i, path in ipairs(files) do
    local f = io.open(path, "rb")
    if f then
      f:seek("set", tonumber(offsets[i]) or 0)
      for line in f:lines() do
        -- transfer.c's debug line of a gossip exchange that was answered.
        local sent, sent_plain, got, got_plain =
          line:match("gossip %S+: sent (%d+) bytes %S+ %((%d+) plain%), answer %d+ of (%d+) bytes %S+ %((%d+) plain%)")
        if sent then
          exchanges = exchanges + 1
          wire = wire + tonumber(sent) + tonumber(got)
          plain = plain + tonumber(sent_plain) + tonumber(got_plain)
        end
      end
      f:close()
    end
  end
  print(string.format("%d %.0f %.0f", exchanges, wire, plain))

elseif command == "sim" then
  local json = assert(slurp(arg[2]))
  local converge = json:match('"phase":"converge","reached":true,"seconds":([%d.]+)')
  local detect = json:match('"detectedSeconds":([%d.]+)')
  local interval = json:match('"interval":([%d.]+)')
  print((converge or "NA") .. " " .. (detect or "NA") .. " " .. (interval or "NA"))

elseif command == "runs" then
  local columns = { {}, {}, {} }
  for _, line in ipairs(lines(arg[2])) do
    local i = 0
    for word in line:gmatch("%S+") do
      i = i + 1
      if columns[i] and tonumber(word) then table.insert(columns[i], tonumber(word)) end
    end
  end
  local function median(t)
    if #t == 0 then return nil end
    table.sort(t)
    local n = #t
    return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
  end
  local function show(v, format) return v and string.format(format, v) or "NA" end
  local c, d, b = median(columns[1]), median(columns[2]), median(columns[3])
  local ds = columns[2]
  print(table.concat({ show(c, "%.2f"), show(d, "%.2f"), show(ds[1], "%.2f"), show(ds[#ds], "%.2f"), show(b, "%.0f") }, " "))

else
  io.stderr:write("scale.lua: unknown command ", tostring(command), "\n")
  os.exit(2)
end
