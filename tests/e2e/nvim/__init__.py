"""Support for driving a real headless Neovim from pytest (see driver.py)."""
