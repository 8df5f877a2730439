"""Generation, from request to PNG: the request schema (request), the pipeline that plans and
runs it (pipeline), model folders (store), recipes inside PNGs (recipe), image edges (images),
atomic file writing (files) and reading a file back (verify).
"""
