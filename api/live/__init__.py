"""Live events for WebSocket clients.

``relay`` reads the Redis Streams of every channel (one reader task per process) and hands
each event to ``manager``, which fans it out to the local connections subscribed to that
channel; ``websocket`` is the ``/ws`` endpoint speaking the protocol of the sidecar contract.
"""
