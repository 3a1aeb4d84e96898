-- Test init for a real headless Neovim: the repo's plugin on the runtimepath, nothing else.
-- The Python driver (driver.py) talks to this instance over --listen with `nvim --server`.
local plugin = assert(os.getenv('TETHER_NVIM_PLUGIN'), 'TETHER_NVIM_PLUGIN not set')
local mode = os.getenv('TETHER_TEST_MODE') or 'setup'
-- 'native' finds the plugin through a pack/*/start folder; 'late' adds it after startup;
-- 'lazy' installs it with the real lazy.nvim from a git repository (TETHER_LAZY_REPO).
if mode ~= 'native' and mode ~= 'late' and mode ~= 'lazy' then
  vim.opt.runtimepath:prepend(plugin)
end
-- Other plugins a test uses (lualine), each a folder to put on the runtimepath.
for dir in (os.getenv('TETHER_TEST_RTP') or ''):gmatch('[^,]+') do
  vim.opt.runtimepath:prepend(dir)
end
if os.getenv('TETHER_TEST_DEFAULTS') ~= '1' then
  vim.o.swapfile = false
end
-- has('python3') in Neovim's python ftplugin probes for pynvim (~3 s on this machine) the first
-- time a Python file loads; most configs disable the provider, as here.
vim.g.loaded_python3_provider = 0
vim.o.more = false -- never block on a hit-enter prompt
vim.o.laststatus = 2
vim.o.statusline = "%{v:lua.require'tether'.statusline()}"
vim.o.columns = 140
vim.o.lines = 40

_G.T = { notes = {}, selects = {}, inputs = {}, events = {} }

-- Everything the plugin tells the user, kept for assertions (and still shown as usual).
local notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(T.notes, { msg = msg, level = level })
  return notify(msg, level, opts)
end

-- vim.ui.select is meant to be replaced (telescope, fzf-lua…); here the test picks the item.
--- The screen's text as the last redraw left it (what a user sees at this moment).
function T.screen()
  local rows = {}
  for r = 1, vim.o.lines do
    local t = {}
    for c = 1, vim.o.columns do
      t[#t + 1] = vim.fn.screenstring(r, c)
    end
    rows[#rows + 1] = (table.concat(t):gsub('%s+$', ''))
  end
  return table.concat(rows, '\n')
end

vim.ui.select = function(items, opts, on_choice)
  local shown = {}
  for i, item in ipairs(items) do
    shown[i] = opts and opts.format_item and opts.format_item(item) or tostring(item)
  end
  table.insert(T.selects, {
    prompt = opts and opts.prompt,
    kind = opts and opts.kind,
    items = shown,
    raw = items,
    cb = on_choice,
    screen = T.screen(),
  })
end

vim.ui.input = function(opts, on_confirm)
  table.insert(T.inputs, { prompt = opts and opts.prompt, cb = on_confirm })
end

--- Answer the oldest pending vim.ui.input with `text` (nil cancels).
function T.answer(text)
  local i = assert(table.remove(T.inputs, 1), 'no pending vim.ui.input')
  i.cb(text)
end

--- Answer the oldest pending vim.ui.select with item `i` (nil cancels).
function T.choose(i)
  local s = assert(table.remove(T.selects, 1), 'no pending vim.ui.select')
  s.cb(i and s.raw[i] or nil, i)
end

for _, ev in ipairs({ 'TetherCheckpoint', 'TetherResume', 'TetherStatus', 'TetherNextSteps' }) do
  vim.api.nvim_create_autocmd('User', {
    pattern = ev,
    callback = function(args)
      table.insert(T.events, { name = ev, data = args.data })
    end,
  })
end

--- Run a base64-encoded Lua chunk and return {ok, value} as JSON (the driver's one entry point).
function T.eval(b64)
  local code = vim.base64.decode(b64)
  local ok, res = pcall(function()
    return assert(loadstring(code, 'driver'))()
  end)
  if not ok then
    return vim.json.encode({ ok = false, error = tostring(res) })
  end
  local enc_ok, out = pcall(vim.json.encode, { ok = true, value = res })
  if not enc_ok then
    return vim.json.encode({ ok = false, error = 'result not JSON-encodable: ' .. tostring(out) })
  end
  return out
end

--- What the statusline shows right now, evaluated by Neovim itself.
function T.statusline()
  return vim.api.nvim_eval_statusline(vim.o.statusline, { winid = vim.api.nvim_get_current_win() }).str
end

local raw = os.getenv('TETHER_TEST_OPTS')
local opts = raw and raw ~= '' and vim.json.decode(raw, { luanil = { object = true, array = true } }) or nil
if mode == 'setup' then
  require('tether').setup(opts)
elseif mode == 'enable' then
  -- Only Neovim's own API: the config comes from the plugin's lsp/tether.lua.
  vim.lsp.enable('tether')
elseif mode == 'late' then
  vim.api.nvim_create_autocmd('VimEnter', {
    once = true,
    callback = function()
      vim.opt.runtimepath:append(plugin)
      require('tether').setup(opts)
    end,
  })
elseif mode == 'lazy' then
  -- A user's lazy.nvim bootstrap with the one-line spec the README gives (plus the test's opts).
  vim.opt.runtimepath:prepend(assert(os.getenv('TETHER_LAZY_NVIM'), 'TETHER_LAZY_NVIM not set'))
  require('lazy').setup({
    spec = { { url = assert(os.getenv('TETHER_LAZY_REPO'), 'TETHER_LAZY_REPO not set'), opts = opts } },
    install = { missing = true, colorscheme = { 'default' } },
    rocks = { enabled = false },
    checker = { enabled = false },
    change_detection = { enabled = false },
    -- Headless: no UI to wait for.
    headless = { process = false, log = false, task = false },
  })
elseif mode == 'g' or mode == 'native' then
  -- plugin/tether.lua runs after this file and picks vim.g.tether up without setup().
  vim.g.tether = opts
end
