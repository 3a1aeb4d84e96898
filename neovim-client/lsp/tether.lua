-- vim.lsp.Config for `tether lsp`, found by vim.lsp.config('tether') / vim.lsp.enable('tether').
-- Built from the plugin configuration (vim.g.tether or require('tether').setup()); no
-- `filetypes`, so it attaches to every file in a workspace.
return require('tether').lsp_config()
