"""The shell around the core: the workspace, the ``App`` (fold, decide, append, follow with
effects), the links and projection files, the table of handlers and the runner that follows the
ledger."""
