"""Alerts that leave the building: rules, incidents, and delivery to webhook, Telegram, e-mail.

- :mod:`~tradeos_pipelines.alerts.rules`: "no successful sync for N × the schedule" and
  "conflicts waiting longer than N hours", evaluated by the ``sync_health_alerts`` sensor;
- :mod:`~tradeos_pipelines.alerts.incidents`: which incident an event opens or closes;
- :mod:`~tradeos_pipelines.alerts.channels`: the outgoing webhook, Telegram, SMTP;
- :mod:`~tradeos_pipelines.alerts.deliverer`: runs in the sidecar, deduplicates, rate-limits,
  retries and records the last delivery of each channel.
"""
