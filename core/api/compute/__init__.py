"""The Compute API v2.1 with microversions: one module per resource, routes as data.

:mod:`wire` is what every request goes through; :mod:`routes` lists every route.
"""
