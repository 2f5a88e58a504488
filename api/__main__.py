"""``python -m api``: run the sidecar (REST on TRADEOS_API_PORT, WebSocket on TRADEOS_WS_PORT)."""

from api.server import main

if __name__ == "__main__":
    main()
