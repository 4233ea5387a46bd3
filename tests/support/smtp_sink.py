#!/usr/bin/env python3
"""A local SMTP sink for tests (aiosmtpd).

Accepts every message and any AUTH PLAIN / LOGIN login, also without TLS (it never offers
STARTTLS), and saves each message as <dir>/<timestamp>-<n>.eml, written to a temporary file
first and then renamed, so a reader never sees half a message. Prints one line when it listens
and one per message, flushed at once:

    listening 127.0.0.1:2525
    saved /tmp/x/20260101T120000.123456-1.eml from=a@example.com to=b@example.com auth=a@example.com

--port 0 picks a free port (read it from the first line). Runs until killed.
"""
import argparse
import asyncio
import itertools
import logging
import os
import signal
import sys
from datetime import datetime, timezone

from aiosmtpd.smtp import SMTP, AuthResult


class SaveHandler:
    def __init__(self, directory):
        self.directory = directory
        self.counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%f")
        final = os.path.join(self.directory, f"{stamp}-{n}.eml")
        temp = os.path.join(self.directory, f".{stamp}-{n}.eml.tmp")
        with open(temp, "wb") as f:
            f.write(envelope.original_content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, final)
        login = session.auth_data.login.decode("utf-8", "replace") if session.auth_data else "-"
        print(
            f"saved {final} from={envelope.mail_from} to={','.join(envelope.rcpt_tos)} auth={login}",
            flush=True,
        )
        return "250 Message accepted for delivery"


def accept_any_login(server, session, envelope, mechanism, auth_data):
    # auth_data is a LoginPassword for PLAIN and LOGIN; keep it so the login can be reported.
    return AuthResult(success=True, auth_data=auth_data)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dir", required=True, help="where to save the .eml files")
    args = parser.parse_args()
    # aiosmtpd warns about its own use of a deprecated attribute on every login; quiet that.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    os.makedirs(args.dir, exist_ok=True)

    handler = SaveHandler(args.dir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="smtp-sink.test",
            auth_require_tls=False,
            authenticator=accept_any_login,
            enable_SMTPUTF8=True,
        ),
        host=args.host,
        port=args.port,
    )
    host, port = server.sockets[0].getsockname()[:2]
    print(f"listening {host}:{port}", flush=True)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
