"""A test SMTP server (aiosmtpd) and an Apprise `json://` receiver, shared with other areas."""

from tests.email.conftest import SmtpServerFixture, smtp_server
from tests.monitor.test_alerts import Receiver, receiver

__all__ = ["Receiver", "SmtpServerFixture", "receiver", "smtp_server"]
