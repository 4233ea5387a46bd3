"""moto's server, with DynamoDB requests handled one at a time.

moto checks a conditional write's or a transaction's conditions and then applies it in separate
steps, without a lock, so two concurrent requests can both pass a condition that real DynamoDB
lets only one pass (seen here: two overlapping scheduler ticks both claiming one slot, about one
run in twenty). The service's exactly-once design rests on that guarantee, so the local stand-in
must give it too. Other services (SQS long polls among them) stay concurrent.

    moto_server.py --host 127.0.0.1 --port 5055
"""
import argparse
import threading

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def serialise_dynamodb(app):
    lock = threading.Lock()

    def handle(environ, start_response):
        # DynamoDB's JSON protocol names the operation in X-Amz-Target: DynamoDB_20120810.PutItem
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with lock:
                # Drain the response inside the lock: the backend's work may be lazy.
                return [b"".join(app(environ, start_response))]
        return app(environ, start_response)

    return handle


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5055)
    args = parser.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, serialise_dynamodb(app), threaded=True)


if __name__ == "__main__":
    main()
