"""Shared utilities below everything else: devices and random draws, crash-safe files."""
