"""Conductor: orchestrates builds, moves and deletes; the database proxy of compute."""
