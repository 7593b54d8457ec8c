"""Interfaces, addresses and (later) neighbour caches, routes and the protocol switch."""
