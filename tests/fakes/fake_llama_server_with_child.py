"""Fake server for fault injection: a grandchild in its process group, then GET /health = 200.

Usage: python fake_llama_server_with_child.py --port PORT CHILD_PID_FILE
It starts ``sleep 600`` (same process group), writes that child's pid to CHILD_PID_FILE, and
serves 200 on /health, so a test can check that stopping the server kills the whole group.
"""

import http.server
import subprocess
import sys


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status":"ok"}' if self.path == "/health" else b"{}"
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    port = int(sys.argv[sys.argv.index("--port") + 1])
    child = subprocess.Popen(["sleep", "600"])
    with open(sys.argv[-1], "w") as f:
        f.write(str(child.pid))
    print(f"fake llama-server with child {child.pid} on port {port}", flush=True)
    http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()


if __name__ == "__main__":
    main()
