-- Loaded at startup: defines :Tether and its <Plug> mappings, and starts the plugin when configured
-- through vim.g.tether.
if vim.g.loaded_tether then
  return
end
vim.g.loaded_tether = 1

if vim.fn.has('nvim-0.11') == 0 then
  vim.notify('tether: Neovim 0.11 or newer is required', vim.log.levels.ERROR)
  return
end

require('tether.commands').create()
-- Cursor positions go to any tether client, however it was started (setup() or vim.lsp.enable).
require('tether.cursor').attach_autocmds()
-- Swap files met while Tether restores a buffer are decided, not prompted (tether.swap).
require('tether.swap').attach_autocmds()
-- A plain vim.lsp.enable('tether') also starts the server for files without a filetype.
require('tether.autostart').attach_autocmds()
-- :help tether works after any kind of install.
require('tether.docs').ensure_helptags()

-- `vim.g.tether = {...}` alone is enough; setup() called from init.lua takes precedence.
if vim.g.tether ~= nil and not require('tether')._did_setup then
  require('tether').setup()
end
