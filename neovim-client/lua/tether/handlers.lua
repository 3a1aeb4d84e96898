--- Handlers for what the server sends: Tether's notifications and `window/showDocument`.
local protocol = require('tether.protocol')
local state = require('tether.state')
local ui = require('tether.ui')
local config = require('tether.config')
local swap = require('tether.swap')

local M = {}

local api = vim.api

M[protocol.NOTIFY_STATUS] = function(_, params, ctx)
  if type(params) ~= 'table' then
    return
  end
  state.set_status(ctx.client_id, params)
  vim.cmd('redrawstatus!')
  state.fire('TetherStatus', { client_id = ctx.client_id, status = params })
end

M[protocol.NOTIFY_OPEN_TERMINAL] = function(_, params)
  if type(params) ~= 'table' then
    return
  end
  ui.open_terminal(params)
end

M[protocol.NOTIFY_SHOW_NEXT_STEPS] = function(_, params, ctx)
  if type(params) ~= 'table' then
    return
  end
  state.next_steps = params
  if config.get().next_steps.auto_show then
    ui.show_next_steps(params)
  end
  state.fire('TetherNextSteps', { client_id = ctx.client_id, next_steps = params })
end

-- Which buffers the next edits restore, so that a swap file met while loading them is decided
-- (tether.swap) rather than left to a prompt.
M[protocol.NOTIFY_RESTORING_BUFFERS] = function(_, params)
  swap.announce(params)
end

M['workspace/applyEdit'] = function(err, params, ctx, hconfig)
  return swap.wrap_apply_edit(vim.lsp.handlers['workspace/applyEdit'])(err, params, ctx, hconfig)
end

--- Byte column in `bufnr` for an LSP position.
local function byte_col(bufnr, pos, encoding)
  local line = api.nvim_buf_get_lines(bufnr, pos.line, pos.line + 1, false)[1] or ''
  local ok, col = pcall(vim.str_byteindex, line, encoding, pos.character, false)
  return ok and col or 0
end

--- Cursor to apply the first time an unfocused resumed buffer is shown in a window.
local pending_group = api.nvim_create_augroup('tether.pending_cursor', { clear = true })

local function set_pending_cursor(bufnr, row, col)
  vim.b[bufnr].tether_cursor = { row, col }
  -- Also the '"' mark, so `'"` and cursor-restoring autocmds agree.
  pcall(api.nvim_buf_set_mark, bufnr, '"', row, col, {})
  api.nvim_create_autocmd('BufWinEnter', {
    group = pending_group,
    buffer = bufnr,
    once = true,
    callback = function(args)
      local pos = vim.b[args.buf].tether_cursor
      if pos then
        vim.b[args.buf].tether_cursor = nil
        local last = api.nvim_buf_line_count(args.buf)
        pcall(api.nvim_win_set_cursor, 0, { math.min(pos[1], last), pos[2] })
      end
    end,
  })
end

--- Neovim's default opens one split per document shown without focus; on a resume of many
--- files that buries the layout. Unfocused documents become listed, loaded buffers whose
--- cursor is placed when they are first displayed ('unfocused_documents' = 'buffer').
M['window/showDocument'] = function(err, params, ctx, hconfig)
  if not err and type(params) == 'table' and type(params.uri) == 'string' and not params.external then
    -- A file being restored may have a swap file of a crashed Neovim: decided before loading.
    swap.prepare(vim.uri_to_bufnr(params.uri))
  end
  if err or type(params) ~= 'table' or params.external or params.takeFocus ~= false
    or config.get().unfocused_documents ~= 'buffer'
  then
    return vim.lsp.handlers['window/showDocument'](err, params, ctx, hconfig)
  end
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  local bufnr = vim.uri_to_bufnr(params.uri)
  vim.fn.bufload(bufnr)
  vim.bo[bufnr].buflisted = true
  local sel = params.selection
  if type(sel) == 'table' and type(sel.start) == 'table' then
    local encoding = client and client.offset_encoding or 'utf-16'
    local row = sel.start.line + 1
    local col = byte_col(bufnr, sel.start, encoding)
    local wins = vim.fn.win_findbuf(bufnr)
    if #wins > 0 then
      for _, w in ipairs(wins) do
        pcall(api.nvim_win_set_cursor, w, { row, col })
      end
    else
      set_pending_cursor(bufnr, row, col)
    end
  end
  return { success = true }
end

return M
