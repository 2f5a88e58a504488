"""The 1C side: typed rows, the HTTP client and the emulator of the 1C HTTP service."""
