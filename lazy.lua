-- lazy.nvim reads this file when it installs Tether from its repository, so that
--   { 'OWNER/tether' }            -- or { 'OWNER/tether', opts = { ... } }
-- is the whole spec. The Neovim plugin is the neovim-client/ folder, which lazy.nvim would not put
-- on the 'runtimepath' by itself (it has no option for a subfolder). The plugin must keep its
-- default name, `tether`. Other plugin managers: neovim-client/README.md.
return {
  'tether',
  -- Tether follows the session from the start: it is not a plugin to load on first use.
  lazy = false,
  main = 'tether',
  -- Always configured: require('tether').setup(opts), with the user's opts merged in.
  opts = {},
  init = function(plugin)
    local dir = plugin.dir .. '/neovim-client'
    if not vim.list_contains(vim.opt.rtp:get(), dir) then
      vim.opt.rtp:append(dir)
    end
    -- What Neovim does for a plugin on the 'runtimepath' at startup (lazy.nvim sources the
    -- plugin/ folder of the repository root only): :Tether and the <Plug> mappings exist even
    -- with a `config` of the user's own.
    vim.cmd.source(vim.fn.fnameescape(dir .. '/plugin/tether.lua'))
  end,
  -- lazy.nvim generates help tags for <repository>/doc only.
  build = function(plugin)
    vim.cmd.helptags(vim.fn.fnameescape(plugin.dir .. '/neovim-client/doc'))
  end,
}
