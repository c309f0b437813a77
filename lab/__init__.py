"""Lab hosts for testing the deploy against a real Debian 12 machine.

See ``lab.host``: ``python3 -m lab.host up|down|status|ssh|reboot``.
"""
