"""Images (a Glance v2 workalike): who sees an image, its data, its changes.

The rules live here as plain logic over the Store and a :class:`~nimbus.core.image.blobs.
BlobStore`; the HTTP face is :mod:`nimbus.core.api.image`, and the compute API's boot asks
:func:`nimbus.core.image.visibility.can_see` whether a project may use an image.
"""
