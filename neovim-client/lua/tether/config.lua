--- Configuration: defaults, validation, and the resolved result.
---
--- Sources, later wins: defaults < `vim.g.tether` < `require('tether').setup(opts)`.
--- Every bad value is reported (one message listing them all) and replaced by its default,
--- so a typo never leaves the plugin half-configured.
local M = {}

---@class tether.TerminalConfig
---@field position string window modifier for the split, e.g. 'botright', 'vertical botright'
---@field size integer height (or width for vertical) of the split
---@field focus boolean move the cursor into the terminal after opening it
---@field allowed_commands string[] executables the server may ask us to run (basename)

---@class tether.NextStepsConfig
---@field auto_show boolean open the floating window when the server sends next steps
---@field focus boolean enter the floating window
---@field border string|string[] float border, see |nvim_open_win()|
---@field max_width integer

---@class tether.Config
---@field cmd string[] how to start the server
---@field cmd_env table<string,string> extra environment for the server
---@field root_markers string[]
---@field workspace_required boolean only start inside a directory with a root marker
---@field autostart boolean call vim.lsp.enable('tether')
---@field start_in_cwd boolean with autostart, also start when Neovim opens in a workspace without a file
---@field init_options table sent verbatim as initializationOptions (see docs/protocol.md)
---@field timeline_limit integer
---@field unfocused_documents 'buffer'|'split'
---@field terminal tether.TerminalConfig
---@field next_steps tether.NextStepsConfig
---@field statusline {prefix: string}

---@type tether.Config
M.defaults = {
  cmd = { 'tether', 'lsp' },
  cmd_env = {},
  root_markers = { '.git', '.agent-session.json' },
  workspace_required = true,
  autostart = true,
  start_in_cwd = true,
  init_options = {},
  timeline_limit = 50,
  unfocused_documents = 'buffer',
  terminal = {
    position = 'botright',
    size = 12,
    focus = false,
    allowed_commands = { 'tmux' },
  },
  next_steps = {
    auto_show = true,
    focus = true,
    border = 'rounded',
    max_width = 90,
  },
  statusline = {
    prefix = 'Tether',
  },
}

local function is_list_of_strings(v, allow_empty)
  if type(v) ~= 'table' or (not allow_empty and #v == 0) then
    return false
  end
  if next(v) ~= nil and not vim.islist(v) then
    return false
  end
  for _, s in ipairs(v) do
    if type(s) ~= 'string' or s == '' then
      return false
    end
  end
  return true
end

local function positive_integer(v)
  return type(v) == 'number' and v > 0 and v == math.floor(v)
end

local function one_of(...)
  local choices = { ... }
  return function(v)
    return vim.list_contains(choices, v)
  end, 'one of ' .. table.concat(
    vim.tbl_map(function(c)
      return ("'%s'"):format(c)
    end, choices),
    ', '
  )
end

local function string_map(v)
  if type(v) ~= 'table' then
    return false
  end
  for k, s in pairs(v) do
    if type(k) ~= 'string' or (type(s) ~= 'string' and type(s) ~= 'number') then
      return false
    end
  end
  return true
end

local position_ok = function(v)
  if type(v) ~= 'string' then
    return false
  end
  -- Only window modifiers: the value is spliced into an Ex command.
  for word in v:gmatch('%S+') do
    if
      not vim.list_contains(
        { 'botright', 'topleft', 'belowright', 'aboveleft', 'rightbelow', 'leftabove', 'vertical' },
        word
      )
    then
      return false
    end
  end
  return true
end

-- Leaf validators: { validator, expected-description }.
local schema = {
  cmd = {
    function(v)
      return is_list_of_strings(v, false)
    end,
    'non-empty list of strings',
  },
  cmd_env = { string_map, 'table of NAME = value strings' },
  root_markers = {
    function(v)
      return is_list_of_strings(v, false)
    end,
    'non-empty list of strings',
  },
  workspace_required = { 'boolean' },
  autostart = { 'boolean' },
  start_in_cwd = { 'boolean' },
  init_options = { 'table' },
  timeline_limit = { positive_integer, 'positive integer' },
  unfocused_documents = { one_of('buffer', 'split') },
  terminal = {
    position = { position_ok, "window modifiers such as 'botright' or 'vertical botright'" },
    size = { positive_integer, 'positive integer' },
    focus = { 'boolean' },
    allowed_commands = {
      function(v)
        return is_list_of_strings(v, true)
      end,
      'list of strings',
    },
  },
  next_steps = {
    auto_show = { 'boolean' },
    focus = { 'boolean' },
    border = { { 'string', 'table' } },
    max_width = { positive_integer, 'positive integer' },
  },
  statusline = {
    prefix = { 'string' },
  },
}

local function is_leaf(spec)
  return spec[1] ~= nil
end

--- Validate `value` against `spec`, returning a clean copy and appending problems.
---@return any
local function check(spec, default, value, path, problems)
  if is_leaf(spec) then
    if pcall(vim.validate, path, value, spec[1], spec[2]) then
      return value
    end
    local expected = spec[2] or (type(spec[1]) == 'table' and table.concat(spec[1], ' or ') or spec[1])
    problems[#problems + 1] = ('%s: expected %s, got %s (using default %s)'):format(
      path,
      expected,
      vim.inspect(value, { newline = ' ', indent = '' }),
      vim.inspect(default, { newline = ' ', indent = '' })
    )
    return vim.deepcopy(default)
  end
  if type(value) ~= 'table' or vim.islist(value) and next(value) ~= nil then
    problems[#problems + 1] = ('%s: expected table, got %s (using defaults)'):format(path, vim.inspect(value))
    return vim.deepcopy(default)
  end
  local out = {}
  for key, sub in pairs(spec) do
    local v = value[key]
    if v == nil then
      out[key] = vim.deepcopy(default[key])
    else
      out[key] = check(sub, default[key], v, path == '' and key or (path .. '.' .. key), problems)
    end
  end
  for key in pairs(value) do
    if spec[key] == nil then
      local name = path == '' and tostring(key) or (path .. '.' .. tostring(key))
      problems[#problems + 1] = ('%s: unknown option (ignored)'):format(name)
    end
  end
  return out
end

--- Merge user tables over each other; lists (cmd, root_markers…) are replaced, not merged.
local function merge(base, over)
  if type(base) ~= 'table' or type(over) ~= 'table' or vim.islist(over) or vim.islist(base) then
    return vim.deepcopy(over)
  end
  local out = vim.deepcopy(base)
  for k, v in pairs(over) do
    out[k] = merge(out[k], v)
  end
  return out
end

---@param opts table|nil options given to setup()
---@param g any value of vim.g.tether
---@return tether.Config config, string[] problems
function M.resolve(opts, g)
  local problems = {}
  local user = {}
  if g ~= nil then
    if type(g) == 'table' then
      user = merge(user, g)
    else
      problems[#problems + 1] = ('vim.g.tether: expected table, got %s (ignored)'):format(vim.inspect(g))
    end
  end
  if opts ~= nil then
    if type(opts) == 'table' then
      user = merge(user, opts)
    else
      problems[#problems + 1] = ('setup(opts): expected table, got %s (ignored)'):format(vim.inspect(opts))
    end
  end
  local cfg = check(schema, M.defaults, user, '', problems)
  return cfg, problems
end

---@type tether.Config|nil
M.current = nil
---@type string[]
M.problems = {}

--- Resolve, remember, and tell the user about bad values.
---@return tether.Config
function M.apply(opts)
  local cfg, problems = M.resolve(opts, vim.g.tether)
  M.current, M.problems = cfg, problems
  if #problems > 0 then
    vim.notify(
      'tether: configuration problems, defaults used instead:\n  ' .. table.concat(problems, '\n  '),
      vim.log.levels.WARN
    )
  end
  return cfg
end

--- The resolved configuration (resolving `vim.g.tether` on first use).
---@return tether.Config
function M.get()
  return M.current or M.apply(nil)
end

--- initializationOptions as the server expects them: an object, never an empty JSON array.
function M.init_options(cfg)
  local opts = vim.deepcopy(cfg.init_options)
  if next(opts) == nil then
    return vim.empty_dict()
  end
  return opts
end

return M
