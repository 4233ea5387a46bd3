#!/usr/bin/env python3
"""A local SMTP sink for tests (aiosmtpd).

Accepts every message and any AUTH PLAIN / LOGIN login, and saves each message as
<dir>/<timestamp>-<n>.eml, written to a temporary file first and then renamed, so a reader never
sees half a message. Prints one line when it listens and one per message, flushed at once
(tls= says whether that session was encrypted):

    listening 127.0.0.1:2525
    saved /tmp/x/20260101T120000.123456-1.eml from=a@example.com to=b@example.com auth=a@example.com tls=no

--mode picks how connections are secured (--tls-cert and --tls-key, PEM files, are needed for
the TLS modes):
  plain     no TLS at all; STARTTLS is not offered and AUTH works in clear (the default)
  starttls  plaintext greeting, STARTTLS offered and required before AUTH, MAIL and the rest
  implicit  TLS from the first byte (SMTPS, like port 465); STARTTLS is not offered

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

import ssl

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
        # After STARTTLS, and from the start with implicit TLS, the transport is a TLS one.
        encrypted = server.transport is not None and (
            server.transport.get_extra_info("ssl_object") is not None
        )
        print(
            f"saved {final} from={envelope.mail_from} to={','.join(envelope.rcpt_tos)} auth={login}"
            f" tls={'yes' if encrypted else 'no'}",
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
    parser.add_argument("--mode", choices=("plain", "starttls", "implicit"), default="plain")
    parser.add_argument("--tls-cert", help="PEM certificate chain, for the TLS modes")
    parser.add_argument("--tls-key", help="PEM private key, for the TLS modes")
    args = parser.parse_args()
    context = None
    if args.mode != "plain":
        if not (args.tls_cert and args.tls_key):
            parser.error(f"--mode {args.mode} needs --tls-cert and --tls-key")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    elif args.tls_cert or args.tls_key:
        parser.error("--tls-cert and --tls-key are only for --mode starttls or implicit")
    # aiosmtpd warns about its own use of a deprecated attribute on every login; quiet that.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    os.makedirs(args.dir, exist_ok=True)

    handler = SaveHandler(args.dir)
    loop = asyncio.get_running_loop()
    starttls = args.mode == "starttls"
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="smtp-sink.test",
            # STARTTLS mode: offered, and required before AUTH and every mail command.
            tls_context=context if starttls else None,
            require_starttls=starttls,
            auth_require_tls=starttls,
            authenticator=accept_any_login,
            enable_SMTPUTF8=True,
        ),
        host=args.host,
        port=args.port,
        # Implicit mode: the listening socket itself speaks TLS.
        ssl=context if args.mode == "implicit" else None,
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
