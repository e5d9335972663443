"""moto, the local stack's AWS endpoint, in a process of its own.

moto is Python: it holds the interpreter lock while it copies every uploaded
part and while it reassembles a multipart upload, seconds for a 1 GB archive
(`make bench`, item 7). In the stack's process it stalled the backup that was
uploading to it, and the API; in a process of its own it runs beside them, as
S3 runs beside Lambda.

The stack writes its key on this process's stdin (never in argv or the
environment) and keeps stdin open: end of file, when the stack stops or is
killed, stops this process too. Once listening, it prints its port.
"""

from __future__ import annotations

import json
import logging
import sys
import threading

from pgbackups_local.signatures import SignedRequestsOnly, StackKey


def main() -> None:
    key = StackKey(**json.loads(sys.stdin.readline()))
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = SignedRequestsOnly(DomainDispatcherApplication(create_backend_app), key)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)

    def stop_with_the_stack() -> None:
        sys.stdin.read()  # returns at end of file: the stack closed it, or is gone
        server.shutdown()

    threading.Thread(target=stop_with_the_stack, name="stack-watch", daemon=True).start()
    print(server.server_port, flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
