"""Shared utilities below everything else: devices and random draws, crash-safe files with the umask's
permissions, output paths checked before any work."""
