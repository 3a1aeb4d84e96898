--- lualine component: `sections = { lualine_x = { 'tether' } }` (|tether-lualine|).
---
--- Loaded by lualine only (its components are found as `lualine.components.<name>`); Tether does
--- not depend on lualine. Shows what `require('tether').statusline()` shows for the window's
--- buffer, coloured by urgency (an error, a session to resume), and acts on click.
local component = require('lualine.component'):extend()

local default_options = {
  -- Text before the label ('' for none); default: the plugin's statusline.prefix.
  prefix = nil,
  -- Per kind of status, the highlight group whose foreground colours the text (on the section's
  -- background); false leaves the section's colours.
  colors = {
    error = 'DiagnosticError',
    resume = 'DiagnosticWarn',
    busy = false,
    idle = false,
  },
  -- Click: resume when a session waits, else the timeline.
  on_click = function()
    local tether = require('tether')
    local view = tether.status_view()
    if view and view.kind == 'resume' then
      tether.resume()
    else
      tether.timeline()
    end
  end,
}

function component:init(options)
  options = vim.tbl_deep_extend('keep', options or {}, default_options)
  if options.color == nil then
    -- Re-evaluated at each draw: the colour follows the status.
    options.color = function()
      local view = require('tether').status_view()
      local group = view and options.colors[view.kind]
      if not group then
        return nil
      end
      local hl = vim.api.nvim_get_hl(0, { name = group, link = false })
      return hl.fg and { fg = ('#%06x'):format(hl.fg) } or nil
    end
  end
  component.super.init(self, options)
end

function component:update_status()
  return require('tether').statusline({ prefix = self.options.prefix })
end

return component
