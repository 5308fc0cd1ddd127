#!/usr/bin/env python3
"""A hostile S3 endpoint for the bounded-text test: lists two keys under `2026/`, and answers
every other request (or, with mode `all`, every request) with HTTP 403 and a 4 MiB error body
(a client error: the S3 library keeps its body in the error it returns).

usage: hostile_s3.py PORT MODE   (MODE: objects | all)
"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = (b"<Error><Code>InternalError</Code><Message>" + b"A" * (4 << 20) + b"</Message></Error>")
LISTING = b"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult><Name>photos</Name><IsTruncated>false</IsTruncated>
<Contents><Key>2026/one.txt</Key><Size>5</Size><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>"e1"</ETag></Contents>
<Contents><Key>2026/two.txt</Key><Size>5</Size><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>"e2"</ETag></Contents>
</ListBucketResult>"""


class Handler(BaseHTTPRequestHandler):
    def answer(self, code, body, head=False):
        self.send_response(code)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_GET(self):
        if "list-type=2" in self.path and MODE != "all":
            self.answer(200, LISTING)
        else:
            self.answer(403, BODY)

    def do_HEAD(self):
        self.answer(403, BODY, head=True)

    def do_PUT(self):
        self.answer(403, BODY)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    MODE = sys.argv[2]
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
