--- Starting the server for files without a filetype.
---
--- vim.lsp.enable() starts servers on |FileType|, which never fires for a file whose type Neovim
--- does not know (`notes`, `TODO`, `.envrc`…). Tether follows every file of a workspace, so for
--- those buffers this does what vim.lsp.enable() does for the others: whenever `tether` is enabled
--- (by setup(), `vim.g.tether` or a plain `vim.lsp.enable('tether')`), and only then.
local M = {}

local api = vim.api

---@param bufnr integer
local function start_for(bufnr)
  if
    not api.nvim_buf_is_valid(bufnr)
    or vim.bo[bufnr].filetype ~= ''
    or vim.bo[bufnr].buftype ~= ''
    or not vim.lsp.is_enabled('tether')
    or #vim.lsp.get_clients({ bufnr = bufnr, name = 'tether' }) > 0
  then
    return
  end
  local c = vim.lsp.config.tether
  if not c then
    return
  end
  -- As vim.lsp.enable() starts a config: root from root_markers, workspace_required honoured,
  -- a running client for the same root reused.
  vim.lsp.start(vim.deepcopy(c), { bufnr = bufnr, reuse_client = c.reuse_client, _root_markers = c.root_markers })
end

function M.attach_autocmds()
  local group = api.nvim_create_augroup('tether.autostart', { clear = true })
  api.nvim_create_autocmd({ 'BufReadPost', 'BufNewFile' }, {
    group = group,
    desc = 'Tether: start the server for files without a filetype',
    callback = function(args)
      -- After filetype detection and modelines: only buffers still without a type.
      vim.schedule(function()
        start_for(args.buf)
      end)
    end,
  })
end

M._start_for = start_for

return M
