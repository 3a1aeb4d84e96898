-- A minimal stand-in for lualine.nvim's component class, for tests only (lualine.nvim is on
-- neither PyPI nor npm, so CI cannot install it). It offers what a component relies on:
-- `require('lualine.component'):extend()`, a class called with the options (lualine instantiates
-- components as `Component(options)`), `init(options)` storing `self.options`, and `super`.
local Component = {}
Component.__index = Component

local function new(cls, options)
  local obj = setmetatable({}, cls)
  obj:init(options)
  return obj
end

function Component:extend()
  local cls = {}
  cls.__index = cls
  cls.super = self
  return setmetatable(cls, { __index = self, __call = new })
end

function Component:init(options)
  self.options = options or {}
end

function Component:update_status()
  return ''
end

return setmetatable(Component, { __call = new })
