"""A small SMTP server for the notifier's tests: it speaks enough of RFC 5321 for smtplib, keeps
each message it accepted, and can be told to refuse DATA or to drop the connection mid-message,
as a mail server that fails or crashes would."""

import socketserver
import threading
from email import message_from_bytes
from email.message import Message


class SmtpServer:
    def __init__(self) -> None:
        self.accepted: list[Message] = []
        self.data_replies: list[str] = []  # replies to the next DATA ends, instead of 250
        self.drop_during_data = 0  # how many next messages to cut off before answering
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.say("220 test ESMTP")
                while line := self.rfile.readline():
                    verb = line.decode().strip().split(" ")[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self.say("250 test")
                    elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                        self.say("250 OK")
                    elif verb == "DATA":
                        self.say("354 go on")
                        body = b""
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            body += chunk
                        if outer.drop_during_data:
                            outer.drop_during_data -= 1
                            return  # the server crashed before its answer
                        if outer.data_replies:
                            self.say(outer.data_replies.pop(0))
                            continue
                        outer.accepted.append(message_from_bytes(body))
                        self.say("250 queued")
                    elif verb == "QUIT":
                        self.say("221 bye")
                        return
                    else:
                        self.say("502 not here")

            def say(self, text: str) -> None:
                self.wfile.write(text.encode() + b"\r\n")

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "SmtpServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
