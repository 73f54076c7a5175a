"""The image API: a Glance-v2-compatible endpoint over the Store and a blob store."""
