--- Neovim's swap files meet Tether's journal when a resume reopens a file a crashed Neovim was
--- editing (E325 ATTENTION). While Tether restores a buffer (announced by the server's
--- `tether/restoringBuffers` just before its edits), the choice is made here instead of a prompt:
---
--- * the swap holds nothing Tether's journal lacks (no changes, the same text as the journal or
---   the disk, or it is older than the journal): it is deleted and the journal's text restored;
--- * otherwise (it is newer, or another Neovim still edits the file) the file opens read-only,
---   Tether's edit is refused with a message that says how to recover the swap, and the server
---   keeps its journal for a later `:Tether resume`.
local protocol = require('tether.protocol')

local M = {}

local api = vim.api
local uv = vim.uv

--- Buffers being restored: realpath -> {journaled_at, text_hash, base_hash, path, until_ms}
M.restoring = {}
--- Edits to refuse: realpath -> reason (set by the SwapExists decision)
M.refused = {}

local ANNOUNCE_TTL_MS = 60000

local function real(path)
  if type(path) ~= 'string' or path == '' then
    return nil
  end
  return uv.fs_realpath(path) or vim.fs.normalize(path)
end

local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

--- Seconds since the epoch of an ISO 8601 UTC time ("2026-11-22T06:00:00.250Z"), or nil.
function M.iso_to_epoch(iso)
  if type(iso) ~= 'string' then
    return nil
  end
  local y, mo, d, h, mi, s, frac = iso:match('^(%d+)%-(%d+)%-(%d+)T(%d+):(%d+):(%d+)(%.?%d*)Z$')
  if not y then
    return nil
  end
  local days = days_from_civil(tonumber(y), tonumber(mo), tonumber(d))
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s) + (tonumber('0' .. frac) or 0)
end

--- The server's `tether/restoringBuffers`: remember what is about to be restored.
function M.announce(params)
  local now = uv.now()
  for _, b in ipairs(type(params) == 'table' and type(params.buffers) == 'table' and params.buffers or {}) do
    local ok, fname = pcall(vim.uri_to_fname, b.uri)
    local key = ok and real(fname) or nil
    if key then
      M.restoring[key] = {
        path = b.path,
        journaled_at = M.iso_to_epoch(b.journaledAt),
        text_hash = b.textHash,
        base_hash = b.baseHash,
        until_ms = now + ANNOUNCE_TTL_MS,
      }
      M.refused[key] = nil
    end
  end
end

local function restoring(key)
  local r = key and M.restoring[key]
  if r and r.until_ms >= uv.now() then
    return r
  end
  return nil
end

--- sha256 of the text a swap file holds, recovered by a separate headless Neovim (a recovery
--- cannot run inside SwapExists, which must not change buffers). nil when it fails.
function M.swap_text_hash(swapname)
  local tmp = vim.fn.tempname()
  local ok, res = pcall(function()
    return vim
      .system({
        vim.v.progpath, '--headless', '-n', '-u', 'NONE', '-i', 'NONE',
        '--cmd', 'set shortmess+=A',
        '-r', swapname,
        '-c', 'silent write! ' .. vim.fn.fnameescape(tmp),
        '-c', 'qa!',
      }, { text = true, timeout = 10000 })
      :wait()
  end)
  local hash = nil
  if ok and res.code == 0 then
    local fh = io.open(tmp, 'rb')
    if fh then
      hash = vim.fn.sha256(fh:read('*a'))
      fh:close()
    end
  end
  os.remove(tmp)
  return hash
end

local function mtime(path)
  local st = uv.fs_stat(path)
  return st and (st.mtime.sec + st.mtime.nsec / 1e9) or nil
end

--- v:swapchoice for `swapname` of a buffer Tether restores, and the refusal when its edit must
--- not be applied.
---@return string choice, string|nil refusal
function M.decide(r, swapname)
  local info = vim.fn.swapinfo(swapname)
  local shown = vim.fn.fnamemodify(swapname, ':~')
  local fix = ('recover it with `:recover %s` (or reopen the file and press R), then delete %s; '
    .. 'to take Tether\'s copy instead, delete %s and run :Tether resume again'):format(
    r.path, shown, shown
  )
  if type(info) ~= 'table' or info.error then
    return 'o', ('Neovim\'s swap file %s cannot be read (%s): %s'):format(shown, tostring(info and info.error), fix)
  end
  if info.pid and info.pid > 0 and info.pid ~= vim.fn.getpid() then
    return 'o', ('the file is open in another Neovim (pid %d): close it there, then run :Tether resume again')
      :format(info.pid)
  end
  if info.dirty == 0 then
    return 'd', nil -- the swap has no unsaved changes: nothing to lose
  end
  local hash = M.swap_text_hash(swapname)
  if hash ~= nil and (hash == r.text_hash or hash == r.base_hash) then
    return 'd', nil -- Tether's journal holds the same text (or the swap nothing new)
  end
  local written = mtime(swapname)
  if hash ~= nil and r.journaled_at and written and written <= r.journaled_at then
    return 'd', nil -- Tether's journal is newer than the swap's content
  end
  return 'o', ('Neovim\'s swap file %s has newer unsaved edits than Tether\'s journal: %s'):format(shown, fix)
end

--- Where Neovim keeps the swap files of `full` (an absolute path), per 'directory': a
--- `//`-ended entry holds `%`-mangled full paths, `.` (or `./sub`) the file's own directory with
--- `.name.sw?`, any other directory `name.sw?`. (swapfilelist() mangles `//` entries here.)
---@return {dir: string, prefix: string}[]
local function swap_places(full)
  local places = {}
  local dir, tail = vim.fs.dirname(full), vim.fs.basename(full)
  for _, entry in ipairs(vim.opt.directory:get()) do
    if entry == '.' or vim.startswith(entry, './') then
      places[#places + 1] = { dir = vim.fs.joinpath(dir, entry:sub(3)), prefix = '.' .. tail }
    elseif entry:match('//$') or entry:match('\\\\$') then
      places[#places + 1] = { dir = vim.fn.expand((entry:gsub('[/\\]+$', ''))), prefix = (full:gsub('/', '%%')) }
    elseif entry ~= '' then
      places[#places + 1] = { dir = vim.fn.expand(entry), prefix = tail }
    end
  end
  return places
end

--- Swap files of `fname` left by other Neovim processes.
function M.find_swaps(fname)
  local out, seen = {}, {}
  local names = { vim.fn.fnamemodify(fname, ':p') }
  local resolved = real(fname)
  if resolved and resolved ~= names[1] then
    names[2] = resolved
  end
  for _, full in ipairs(names) do
    for _, place in ipairs(swap_places(full)) do
      for entry, kind in vim.fs.dir(place.dir) do
        local suffix = entry:sub(#place.prefix + 1)
        if kind == 'file' and vim.startswith(entry, place.prefix) and suffix:match('^%.sw[a-p]$') then
          local swapname = vim.fs.joinpath(place.dir, entry)
          local info = vim.fn.swapinfo(swapname)
          if not seen[swapname] and (type(info) ~= 'table' or info.pid ~= vim.fn.getpid()) then
            seen[swapname] = true
            out[#out + 1] = swapname
          end
        end
      end
    end
  end
  return out
end

--- Before Tether's restore loads a buffer: decide about the swap files of its file. Loading it
--- with a swap file present would stop at E325 (`bufload()` raises it without asking).
---@return string|nil refusal
function M.prepare(bufnr)
  local name = api.nvim_buf_get_name(bufnr)
  local key = real(name)
  local r = restoring(key)
  if not r or api.nvim_buf_is_loaded(bufnr) then
    return key and M.refused[key] or nil
  end
  if M.refused[key] == nil and not r.decided then
    r.decided = true
    for _, swapname in ipairs(M.find_swaps(name)) do
      local choice, refusal = M.decide(r, swapname)
      if choice == 'd' then
        os.remove(swapname)
      elseif refusal then
        M.refused[key] = refusal
        break
      end
    end
  end
  if M.refused[key] then
    -- Shown as on disk, read-only, without touching the swap file the user may recover.
    vim.bo[bufnr].swapfile = false
    vim.bo[bufnr].readonly = true
  end
  return M.refused[key]
end

--- A safety net for other ways of loading a buffer being restored (`:edit`).
function M.on_swap_exists()
  local key = real(vim.fn.expand('<afile>:p'))
  local r = restoring(key)
  if not r then
    return -- not a file Tether restores: Neovim's own handling (prompt, or W325)
  end
  local choice, refusal = M.decide(r, vim.v.swapname)
  vim.v.swapchoice = choice
  M.refused[key] = refusal
  r.decided = true
end

--- The refusal for the buffer `bufnr`, loading it first.
---@return string|nil reason
function M.check_buffer(bufnr)
  local refusal = M.prepare(bufnr)
  if refusal then
    return refusal
  end
  if not api.nvim_buf_is_loaded(bufnr) then
    local ok, err = pcall(vim.fn.bufload, bufnr)
    if not ok then
      return tostring(err)
    end
  end
  return nil
end

--- `workspace/applyEdit` of Tether's restore: refused where the swap file must win or wait.
function M.wrap_apply_edit(default)
  return function(err, params, ctx, config)
    if type(params) == 'table' and params.label == protocol.LABEL_RESTORE_EDIT and type(params.edit) == 'table' then
      local uris = vim.tbl_keys(type(params.edit.changes) == 'table' and params.edit.changes or {})
      for _, change in ipairs(type(params.edit.documentChanges) == 'table' and params.edit.documentChanges or {}) do
        if type(change.textDocument) == 'table' then
          uris[#uris + 1] = change.textDocument.uri
        end
      end
      for _, uri in ipairs(uris) do
        local reason = M.check_buffer(vim.uri_to_bufnr(uri))
        if reason then
          return { applied = false, failureReason = reason }
        end
      end
    end
    return default(err, params, ctx, config)
  end
end

--- Idempotent: called from plugin/tether.lua and setup().
function M.attach_autocmds()
  local group = api.nvim_create_augroup('tether.swap', { clear = true })
  api.nvim_create_autocmd('SwapExists', {
    group = group,
    callback = function()
      M.on_swap_exists()
    end,
  })
end

return M
