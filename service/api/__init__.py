"""Thin routers: parse, call a service function, return."""
