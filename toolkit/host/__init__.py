"""The plugin host: the hook contract (hookspecs), entry-point loading (loading) and the
registry of what each plugin registered (registry).
"""
