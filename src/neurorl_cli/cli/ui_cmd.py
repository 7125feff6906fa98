"""`neurorl ui`: a live view of the registry in the browser (the server is neurorl_cli/ui/)."""

from __future__ import annotations

import typer

from neurorl_cli.cli.app import out
from neurorl_cli.errors import UserError

DEFAULT_PORT = 8760
LOCAL = "127.0.0.1"


def register(app: typer.Typer) -> None:
    @app.command(epilog="Examples:\n\n"
                        "neurorl ui\n"
                        "neurorl ui --port 8800\n"
                        "neurorl ui --host 0.0.0.0")
    def ui(
        port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, metavar="N", help="Port to listen on."),
        host: str = typer.Option(LOCAL, "--host", metavar="ADDRESS", help="Address to listen on (0.0.0.0: every interface; the token still guards it)."),
    ) -> None:
        """Serve the registry as live web pages: runs, curves, evaluations, analyses, GIFs.

        Read-only: no page changes or deletes a run. Pages of running runs update as their
        logs grow. Open the printed address (it carries the access token); Ctrl-C stops it."""
        import socket
        import tempfile

        from neurorl_cli import api
        from neurorl_cli.cli.common import refresh, registry
        from neurorl_cli.ui.app import create_app
        from neurorl_cli.ui.auth import new_token

        home, engine = registry()
        sock = _listen(host, port)
        token = new_token()
        with tempfile.TemporaryDirectory(prefix="neurorl-ui-") as folder:
            app = create_app(api.Registry(engine), token, cookie=f"neurorl-ui-{port}",
                             refresh=lambda: refresh(engine), folder=folder)
            shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
            out.print(f"neurorl ui: the registry {home.registry}, read-only")
            out.print(f"  open http://{_bracketed(shown)}:{port}/?token={token}")
            if host != LOCAL:
                out.print(f"  listening on {host}: anyone who reaches this machine with the token can read the registry")
            else:
                out.print(f"  from your laptop: ssh -L {port}:127.0.0.1:{port} {socket.gethostname()}, then open the address above")
            out.print("  Ctrl-C stops it")
            out.file.flush()
            _serve(app, sock)


def _listen(host: str, port: int):
    """The listening socket, bound here so that a taken port is one clear line."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"--port {port}: already in use on {host} (another neurorl ui?): choose another, e.g. --port {port + 1}") from None
        raise UserError(f"--host {host} --port {port}: cannot listen there ({exc.strerror})") from None
    sock.listen(128)
    return sock


def _serve(app, sock) -> None:
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
