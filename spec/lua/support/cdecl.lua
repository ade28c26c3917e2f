-- Test support: the top-level C declarations of a header or of an ffi.cdef, each reduced to a
-- canonical text (one way of spacing, parameter names dropped), so that the LuaJIT
-- binding's copy of the API can be compared with clustershazbot.h declaration by declaration.
--
-- It reads the C this project writes in those two places, not any C: prototypes (function
-- pointer parameters included), `struct tag;`, `typedef struct tag name;` and
-- `typedef struct tag { fields } name;`. Anything else is an error, so that a declaration it
-- cannot read fails the spec instead of escaping the comparison.

local cdecl = {}

local TYPE_WORDS = {}
for word in ("void char short int long float double signed unsigned const volatile _Bool"):gmatch("%S+") do
  TYPE_WORDS[word] = true
end
local TAG_WORDS = { struct = true, union = true, enum = true }
local QUALIFIERS = { const = true, volatile = true }

local function tokens(text)
  local list = {}
  local i = 1
  while i <= #text do
    local word = text:match("^[%a_][%w_]*", i) or text:match("^%d+", i) or text:match("^%.%.%.", i)
    if word then
      list[#list + 1] = word
      i = i + #word
    elseif text:sub(i, i):match("%s") then
      i = i + 1
    else
      list[#list + 1] = text:sub(i, i)
      i = i + 1
    end
  end
  return list
end

local function append(list, more) return table.move(more, 1, #more, #list + 1, list) end

local function is_name(token) return token:match("^[%a_][%w_]*$") and not TYPE_WORDS[token] end

-- Whether tokens still name a type: `const` alone does not, so in `const size_t` the last word
-- is the type, not a parameter's name.
local function names_a_type(list)
  for _, t in ipairs(list) do
    if t:match("^[%a_]") and not QUALIFIERS[t] then return true end
  end
  return false
end

-- How C is usually written: `char *body`, `f(void *arg)`, `void (*)(void *)`.
local function render(list)
  return (table.concat(list, " "):gsub(" ([,;%)%]])", "%1"):gsub("([%(%[]) ", "%1"):gsub("%) %(", ")(")
                                 :gsub("%* ([%a_])", "*%1"))
end

-- Splits list[first..last] on the commas outside parentheses.
local function split_params(list, first, last)
  local params, current, depth = {}, {}, 0
  for i = first, last do
    local t = list[i]
    if t == "," and depth == 0 then
      params[#params + 1], current = current, {}
    else
      if t == "(" then depth = depth + 1 elseif t == ")" then depth = depth - 1 end
      current[#current + 1] = t
    end
  end
  if #current > 0 then params[#params + 1] = current end
  return params
end

local function closing_paren(list, open)
  local depth = 0
  for i = open, #list do
    if list[i] == "(" then depth = depth + 1 elseif list[i] == ")" then depth = depth - 1 end
    if depth == 0 then return i end
  end
  error("unbalanced parentheses in: " .. table.concat(list, " "), 0)
end

local unnamed_params

-- One parameter without its name: `const char *name` -> `const char *`,
-- `void (*done)(void *arg)` -> `void (*)(void *)`.
local function unnamed(param)
  local open = nil
  for i, t in ipairs(param) do
    if t == "(" then open = i break end
  end
  if not open then
    local without_last = { table.unpack(param, 1, #param - 1) }
    if is_name(param[#param]) and not TAG_WORDS[param[#param - 1]] and names_a_type(without_last) then
      return without_last
    end
    return param
  end
  local close = closing_paren(param, open)
  local out = {}
  for i = 1, close do
    if not (i > open and is_name(param[i]) and param[i - 1] == "*") then out[#out + 1] = param[i] end
  end
  assert(param[close + 1] == "(", "a parenthesised parameter that is not a function pointer: " .. render(param))
  local args_close = closing_paren(param, close + 1)
  append(out, unnamed_params(param, close + 1, args_close))
  append(out, { table.unpack(param, args_close + 1) })
  return out
end

-- `( params )` at list[open..close], each parameter unnamed.
function unnamed_params(list, open, close)
  local out = { "(" }
  for n, param in ipairs(split_params(list, open + 1, close - 1)) do
    if n > 1 then out[#out + 1] = "," end
    append(out, unnamed(param))
  end
  out[#out + 1] = ")"
  return out
end

-- One declaration's tokens -> its section ("functions" or "types"), name and canonical text.
local function classify(list)
  local text = render(list)
  if list[1] == "struct" and #list == 2 then return "types", "struct " .. list[2], text end
  if list[1] == "typedef" then
    if list[2] ~= "struct" or not is_name(list[#list]) then error("unreadable typedef: " .. text, 0) end
    return "types", list[#list], text
  end
  for i, t in ipairs(list) do
    if t == "(" then
      local name = list[i - 1]
      if not name or not is_name(name) or closing_paren(list, i) ~= #list then
        error("unreadable declaration: " .. text, 0)
      end
      return "functions", name, render({ table.unpack(list, 1, i - 1) }) .. render(unnamed_params(list, i, #list))
    end
  end
  error("unreadable declaration: " .. text, 0)
end

-- C text -> { functions = { name -> canonical }, types = { name -> canonical },
--              order = { { section =, name = }... } }.
-- Comments, the C++ guards and the other preprocessor lines are dropped first.
function cdecl.parse(text)
  text = text:gsub("/%*.-%*/", " "):gsub("//[^\n]*", " ")
  text = text:gsub("\n%s*#%s*ifdef%s+__cplusplus.-\n%s*#%s*endif[^\n]*", "\n")
  text = text:gsub("\n%s*#[^\n]*", "\n"):gsub("^%s*#[^\n]*", "")
  local found = { functions = {}, types = {}, order = {} }
  local current, depth = {}, 0
  for _, t in ipairs(tokens(text)) do
    if t == ";" and depth == 0 then
      local section, name, canonical = classify(current)
      found[section][name] = canonical
      found.order[#found.order + 1] = { section = section, name = name }
      current = {}
    else
      if t == "{" then depth = depth + 1 elseif t == "}" then depth = depth - 1 end
      current[#current + 1] = t
    end
  end
  if #current > 0 then error("a declaration without its ';': " .. render(current), 0) end
  return found
end

-- The bodies of every `ffi.cdef [[...]]` (any level of long bracket) in a Lua source.
function cdecl.cdef_blocks(lua_source)
  local blocks = {}
  for _, body in lua_source:gmatch("ffi%.cdef%s*%[(=*)%[(.-)%]%1%]") do blocks[#blocks + 1] = body end
  local _, calls = lua_source:gsub("ffi%.cdef", "")
  if calls ~= #blocks then error("an ffi.cdef that is not a [[...]] string: read it by hand", 0) end
  return blocks
end

-- What `cdef` declares differently from `header`, one message per declaration, in the cdef's
-- order; `elsewhere` names the functions the cdef takes from other libraries.
function cdecl.mismatches(cdef, header, elsewhere)
  local problems = {}
  for _, decl in ipairs(cdef.order) do
    local ours, theirs = cdef[decl.section][decl.name], header[decl.section][decl.name]
    if decl.section == "functions" and elsewhere[decl.name] then
      if theirs then problems[#problems + 1] = decl.name .. ": listed as not the library's, yet clustershazbot.h declares it" end
    elseif not theirs then
      problems[#problems + 1] = decl.name .. ": declared by the cdef (" .. ours .. "), not by clustershazbot.h"
    elseif ours ~= theirs then
      problems[#problems + 1] = decl.name .. ": the cdef has `" .. ours .. "`, clustershazbot.h has `" .. theirs .. "`"
    end
  end
  return problems
end

return cdecl
