#!/usr/bin/env python3
"""An authentication hook for aioftpd's [auth_hook], with the standard library only.

aioftpd POSTs {"login": ..., "password": ..., "address": ...} for every login
that neither [[users]] nor the users database has; this answers from a JSON
file of accounts (docs/users.md, "External authentication hook"):

    {
      "bob": {
        "password": "pbkdf2_sha256$600000$<salt hex>$<key hex>",
        "user": {"base_path": "/srv/ftp/bob", "home": "/",
                 "permissions": [{"path": "/", "writable": true}]}
      }
    }

"user" holds the keys of a [[users]] entry but login and password; aioftpd
checks it as it checks the file. The file is read again at every request, so
an edit takes effect at the next login (after aioftpd's cache_lifetime).

    python3 auth_hook.py hash PASSWORD              # a "password" value
    python3 auth_hook.py serve accounts.json --port 8080 [--token-file FILE] [--log FILE]

serve prints "listening on HOST:PORT" once it accepts requests (--port 0
takes a free port). With --token-file, a request without
"Authorization: Bearer <the file's first line>" gets 401. With --log, each
request's login and address (never the password) is appended as a JSON line.
Replace the file lookup with your LDAP bind, SSO check or customer database.
"""

import argparse
import hashlib
import hmac
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# aioftpd sends a few hundred bytes; anything much larger is not aioftpd.
MAX_REQUEST = 16 * 1024
DEFAULT_ITERATIONS = 600_000


def hash_password(password, iterations=DEFAULT_ITERATIONS):
    salt = os.urandom(16)
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${key.hex()}"


def password_matches(stored, password):
    try:
        scheme, iterations, salt, key = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        got = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), bytes.fromhex(salt), int(iterations)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, bytes.fromhex(key))


def decide(accounts_file, login, password):
    """The answer for one login: {"allow": true, "user": {...}} or {"allow": false}."""
    with open(accounts_file, encoding="utf-8") as f:
        accounts = json.load(f)
    account = accounts.get(login)
    if account is None:
        # Spend the same time on an unknown login as on a wrong password.
        password_matches(hash_password("decoy", 1), password)
        return {"allow": False}
    if not password_matches(account.get("password", ""), password):
        return {"allow": False}
    return {"allow": True, "user": account.get("user", {})}


def handler(accounts_file, token, log_file):
    log_lock = threading.Lock()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            if token is not None:
                sent = self.headers.get("Authorization", "")
                if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
                    return self.answer(401, {"error": "bad token"})
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                return self.answer(400, {"error": "bad Content-Length"})
            if not 0 < length <= MAX_REQUEST:
                return self.answer(413, {"error": "request too large"})
            try:
                request = json.loads(self.rfile.read(length))
                login, password = request["login"], request["password"]
                address = request.get("address", "")
            except (ValueError, KeyError, TypeError):
                return self.answer(400, {"error": "expected login, password, address"})
            if log_file:
                with log_lock, open(log_file, "a", encoding="utf-8") as log:
                    log.write(json.dumps({"login": login, "address": address}) + "\n")
            try:
                answer = decide(accounts_file, login, password)
            except (OSError, ValueError) as err:
                # aioftpd refuses the login on any answer other than 2xx.
                print(f"cannot read {accounts_file}: {err}", file=sys.stderr)
                return self.answer(500, {"error": "accounts unavailable"})
            self.answer(200, answer)

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):
            # The default logs every request line to stderr; logins go to --log.
            pass

    return Hook


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    hashing = commands.add_parser("hash", help="print a password value for the accounts file")
    hashing.add_argument("password")
    hashing.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS)
    serving = commands.add_parser("serve", help="answer aioftpd's requests")
    serving.add_argument("accounts", help="the JSON file of accounts")
    serving.add_argument("--host", default="127.0.0.1")
    serving.add_argument("--port", type=int, default=8080)
    serving.add_argument("--token-file", help="require this bearer token")
    serving.add_argument("--log", help="append each request's login and address here")
    args = parser.parse_args()

    if args.command == "hash":
        print(hash_password(args.password, args.iterations))
        return
    token = None
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.readline().strip()
    server = ThreadingHTTPServer(
        (args.host, args.port), handler(args.accounts, token, args.log)
    )
    host, port = server.server_address[:2]
    print(f"listening on {host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
