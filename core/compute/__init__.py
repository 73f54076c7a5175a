"""Compute: one service per hypervisor host, the instance lifecycle over a driver."""
