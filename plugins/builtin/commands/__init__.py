"""Plugins that add `toolkit` commands (register_commands).
"""
