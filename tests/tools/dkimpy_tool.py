#!/usr/bin/env python3
"""dkimpy as the independent DKIM implementation of tests/signing.rs.

  dkimpy_tool.py verify --nameserver IP:PORT < message
      verifies the first DKIM-Signature, looking the key up on that name
      server (for mailkey signatures: mailkey._domainkey.D, which the test
      zone makes a CNAME to mailkey.D); exit 0 when it verifies.
  dkimpy_tool.py arc-verify --nameserver IP:PORT < message
      validates the ARC chain (dkim.arc_verify); prints cv=RESULT and exits
      0 when the chain passes.
  dkimpy_tool.py sign --domain D --key FILE [--selector mailkey] < message
      writes the message with a dkimpy signature (relaxed/relaxed) prepended;
      FILE is a PEM private key as mailkey-milter keygen writes it.

Needs dkimpy, pynacl, dnspython and cryptography (tests/setup.sh).
"""
import argparse
import base64
import sys

import dkim
import dns.resolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


def dns_function(nameserver):
    """A dkimpy dnsfunc asking `nameserver` (IP:PORT) for TXT records."""
    host, port = nameserver.rsplit(":", 1)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = int(port)

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        answer = resolver.resolve(name.rstrip(".") + ".", "TXT", lifetime=timeout)
        return b"".join(answer[0].strings)

    return dnsfunc


def verify(args):
    message = sys.stdin.buffer.read()
    ok = dkim.verify(message, dnsfunc=dns_function(args.nameserver))
    print("dkimpy: pass" if ok else "dkimpy: fail")
    return 0 if ok else 1


def arc_verify(args):
    message = sys.stdin.buffer.read()
    cv, results, comment = dkim.arc_verify(message, dnsfunc=dns_function(args.nameserver))
    print(f"dkimpy: cv={cv.decode()} ({comment})")
    for result in results:
        print(f"  {result}")
    return 0 if cv == b"pass" else 1


def sign(args):
    with open(args.key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        privkey, algorithm = base64.b64encode(raw), b"ed25519-sha256"
    else:
        privkey = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        algorithm = b"rsa-sha256"
    message = sys.stdin.buffer.read()
    signature = dkim.sign(
        message,
        selector=args.selector.encode(),
        domain=args.domain.encode(),
        privkey=privkey,
        signature_algorithm=algorithm,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    sys.stdout.buffer.write(signature + message)
    return 0


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--nameserver", required=True)
    a = sub.add_parser("arc-verify")
    a.add_argument("--nameserver", required=True)
    s = sub.add_parser("sign")
    s.add_argument("--domain", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--selector", default="mailkey")
    args = parser.parse_args()
    commands = {"verify": verify, "arc-verify": arc_verify, "sign": sign}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
