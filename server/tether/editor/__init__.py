"""The editor's side, without pygls: open documents and the unsaved-buffer journal, the resume
plan (pure), the previous session a resume would bring back, and the status model."""
