"""The demo set-up (`maintd demo`) and the stand-ins it runs: service.py (HTTP app), svcctl.py (service manager).

Kept empty on purpose: `python -m maintd.demo.svcctl` imports this package first, and anything imported here
would be imported twice (runpy warns about it on stderr, which then ends up in command errors).
"""
