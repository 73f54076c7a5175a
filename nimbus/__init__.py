"""nimbus"""
