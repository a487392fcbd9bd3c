"""Seed 001's socket.io doors through the python-socketio client (tests/foyer_socket.rs).

Usage: socketio_chat.py BASE_URL TOKEN CHAT_ID OTHER_CHAT_ID (someone else's) [flood]. Prints one JSON line per thing seen:
`refused` (a bad token's connect_error), `ready` (two sockets joined the chat), then
`user_typing` (socket b sees socket a typing), `new_message` (each message stored in the
chat, on b), `error` (joining someone else's chat), then `oversize_closed` (a message over
the server's limit closed socket a) and `other_socket` (whether b is still connected). Exits
once it has seen two messages and the error (or after 30 s) and the oversize message's end.

With `flood`, one socket joins the chat, then sends four `typing` messages at once and prints
`flood` with the error codes it was answered (the server's message budget is set low).
"""
import json
import sys
import threading

import socketio

base, token, chat, other = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
PATH = "ws/socket.io"


PRINTING = threading.Lock()
FLOOD = len(sys.argv) > 5 and sys.argv[5] == "flood"


def out(kind, data=None):
    # Handlers run on the clients' threads: one whole line at a time.
    with PRINTING:
        sys.stdout.write(json.dumps({"kind": kind, "data": data}) + "\n")
        sys.stdout.flush()


if FLOOD:
    c, codes = socketio.Client(), []
    flood_joined = threading.Event()
    c.on("joined_chat", lambda d: flood_joined.set())
    c.on("error", lambda d: codes.append(d["code"]))
    c.connect(base, socketio_path=PATH, auth={"token": token}, wait_timeout=10)
    c.emit("join_chat", {"chat_id": chat})
    joined_in_time = flood_joined.wait(10)
    for _ in range(4):
        c.emit("typing", {"chat_id": chat, "is_typing": True})
    c.sleep(2)
    out("flood", {"joined": joined_in_time, "errors": codes, "connected": c.connected})
    c.disconnect()
    sys.exit(0)

bad = socketio.Client()
try:
    bad.connect(base, socketio_path=PATH, auth={"token": "nope"}, wait_timeout=10)
    out("accepted")
    bad.disconnect()
except socketio.exceptions.ConnectionError as e:
    out("refused", str(e))

a, b = socketio.Client(), socketio.Client()
joined = {"a": threading.Event(), "b": threading.Event()}
messages, errors = [], []
done = threading.Event()


def check_done():
    if len(messages) >= 2 and errors:
        done.set()


a.on("joined_chat", lambda d: joined["a"].set())
b.on("joined_chat", lambda d: joined["b"].set())
a.on("user_typing", lambda d: out("echoed_typing", d))
b.on("user_typing", lambda d: out("user_typing", d))


@b.on("new_message")
def new_message(m):
    messages.append(m)
    out("new_message", m)
    check_done()


@b.on("error")
def error(d):
    errors.append(d)
    out("error", d)
    check_done()


for client in (a, b):
    client.connect(base, socketio_path=PATH, auth={"token": token}, wait_timeout=10)
a.emit("join_chat", {"chat_id": chat})
b.emit("join_chat", {"chat_id": chat})
if not (joined["a"].wait(10) and joined["b"].wait(10)):
    out("join_timeout")
    sys.exit(1)
a.emit("typing", {"chat_id": chat, "is_typing": True})
out("ready")
b.emit("join_chat", {"chat_id": other})
done.wait(30)
# A message over the server's 64 KiB limit closes the socket that sent it, and only it.
closed = threading.Event()
a.on("disconnect", lambda *args: closed.set())
a.emit("typing", {"chat_id": chat, "is_typing": True, "pad": "x" * (100 * 1024)})
out("oversize_closed" if closed.wait(10) else "oversize_kept")
out("other_socket", b.connected)
a.disconnect()
b.disconnect()
out("end", {"messages": len(messages), "errors": len(errors)})
