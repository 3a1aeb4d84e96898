--- Tell the server where the cursor is (`tether/cursor`), so a resume reopens files where you
--- were, not only where you last typed. LSP has no standard notification for this.
local protocol = require('tether.protocol')

local M = {}

local api = vim.api

M.delay_ms = 300

---@type table<integer, string> last position sent per client, "uri:line:char"
local last_sent = {}
local timer = nil

--- Send the cursor of the current window's buffer to its tether clients (if it changed).
function M.send_now()
  local buf = api.nvim_get_current_buf()
  if vim.bo[buf].buftype ~= '' or api.nvim_win_get_config(0).relative ~= '' then
    return
  end
  local clients = vim.lsp.get_clients({ bufnr = buf, name = 'tether' })
  if #clients == 0 then
    return
  end
  local pos = api.nvim_win_get_cursor(0)
  local row, col = pos[1] - 1, pos[2]
  local text = api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ''
  local uri = vim.uri_from_bufnr(buf)
  for _, client in ipairs(clients) do
    local ok, character = pcall(vim.str_utfindex, text, client.offset_encoding, math.min(col, #text), false)
    character = ok and character or 0
    local key = ('%s:%d:%d'):format(uri, row, character)
    if last_sent[client.id] ~= key and client.initialized then
      last_sent[client.id] = key
      client:notify(protocol.CLIENT_NOTIFY_CURSOR, { uri = uri, line = row, character = character })
    end
  end
end

--- Debounced: cursor motion is frequent, the server only needs where it settled.
function M.schedule()
  if not timer then
    timer = assert(vim.uv.new_timer())
  end
  timer:stop()
  timer:start(M.delay_ms, 0, vim.schedule_wrap(M.send_now))
end

function M.forget(client_id)
  last_sent[client_id] = nil
end

--- Idempotent: called from plugin/tether.lua and setup().
function M.attach_autocmds()
  local group = api.nvim_create_augroup('tether.cursor', { clear = true })
  api.nvim_create_autocmd({ 'CursorMoved', 'CursorMovedI' }, { group = group, callback = M.schedule })
  -- Leaving a buffer sends its cursor before the window shows another one.
  api.nvim_create_autocmd('BufLeave', { group = group, callback = M.send_now })
  -- Entering a buffer, attaching a client, and leaving Neovim's focus send soon.
  api.nvim_create_autocmd({ 'BufEnter', 'LspAttach', 'FocusLost' }, {
    group = group,
    callback = function()
      vim.schedule(M.send_now)
    end,
  })
end

return M
