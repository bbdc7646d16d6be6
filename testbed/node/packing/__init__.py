"""Packed things: several things in one node process and container (a thing host)."""
