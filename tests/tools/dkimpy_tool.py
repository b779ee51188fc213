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
  dkimpy_tool.py sign-batch --keys FILE < cases > signed
      tests/differential.rs: each input line is a JSON case {"id",
      "message" (base64), "signatures": [...]}; each signature {"key",
      "domain", "selector", "canon", "headers", "length", "tags", "drop"} is
      made in turn over the message as signed so far (so a later one sees
      and may cover the earlier ones) and prepended. "tags" sets or adds
      tags (t=, x=, l=0...) before b= is computed, "drop" leaves tags out:
      signatures no signer makes, valid but for that. FILE is JSON: key
      name -> {"algorithm", "private"} (base64 Ed25519 seed or PEM RSA).
      Writes one line per case: {"id", "message" (base64)}.
  dkimpy_tool.py verify-batch --nameserver IP:PORT < messages > results
      each input line {"id", "message" (base64)}; writes {"id", "results":
      [{"d", "s", "pass", "why"}]}, every DKIM-Signature verified (dkimpy's
      verify() looks at the first only).

Needs dkimpy, pynacl, dnspython and cryptography (tests/setup.sh).
"""
import argparse
import base64
import json
import re
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


def sign_one(message, spec, keys):
    """One DKIM-Signature field over `message` as DKIM.sign makes it, with
    the tags of `spec` set or dropped before b= is computed."""
    key = keys[spec["key"]]
    algorithm = key["algorithm"].encode()
    d = dkim.DKIM(message, signature_algorithm=algorithm)
    if algorithm == b"ed25519-sha256":
        import nacl.signing
        import nacl.encoding
        pk = nacl.signing.SigningKey(key["private"].encode(), encoder=nacl.encoding.Base64Encoder)
    else:
        pk = dkim.crypto.parse_pem_private_key(key["private"].encode())
    d.hasher = dkim.HASH_ALGORITHMS[algorithm]
    canon = dkim.CanonicalizationPolicy.from_c_value(spec["canon"].encode())
    include = tuple(h.lower().encode() for h in spec["headers"])
    body = canon.canonicalize_body(d.body)
    tags = {k.encode(): str(v).encode() for k, v in spec.get("tags", {}).items()}
    length = tags.get(b"l")
    if spec.get("length"):
        length = str(len(body)).encode()
    if length is not None:
        body = body[: int(length)]
    h = d.hasher()
    h.update(body)
    fields = [
        (b"v", b"1"),
        (b"a", algorithm),
        (b"c", spec["canon"].encode()),
        (b"d", spec["domain"].encode()),
        (b"s", spec["selector"].encode()),
        (b"t", str(int(__import__("time").time())).encode()),
    ]
    if length is not None:
        fields.append((b"l", length))
    fields += [(b"h", b" : ".join(include)), (b"bh", base64.b64encode(h.digest()))]
    present = {k for k, _ in fields}
    fields = [(k, tags.get(k, v)) for k, v in fields]
    fields += [(k, v) for k, v in tags.items() if k not in present]
    drop = {t.encode() for t in spec.get("drop", [])}
    fields = [(k, v) for k, v in fields if k not in drop]
    fields.append((b"b", b"0" * 60))
    value = d.gen_header(fields, include, canon, b"DKIM-Signature", pk)
    return b"DKIM-Signature: " + value


def sign_batch(args):
    with open(args.keys) as f:
        keys = json.load(f)
    for line in sys.stdin:
        case = json.loads(line)
        message = base64.b64decode(case["message"])
        for spec in case["signatures"]:
            message = sign_one(message, spec, keys) + message
        out = {"id": case["id"], "message": base64.b64encode(message).decode()}
        sys.stdout.write(json.dumps(out) + "\n")
    return 0


def verify_batch(args):
    dnsfunc = dns_function(args.nameserver)
    for line in sys.stdin:
        case = json.loads(line)
        message = base64.b64decode(case["message"])
        d = dkim.DKIM(message)
        sigs = [v for k, v in d.headers if k.lower() == b"dkim-signature"]
        results = []
        for i, value in enumerate(sigs):
            tags = dict(
                (m.group(1).decode(), m.group(2).decode(errors="replace"))
                for m in re.finditer(rb"(?:^|;)\s*([a-z]+)\s*=\s*([^;]*)", value)
            )
            try:
                ok, why = bool(d.verify(idx=i, dnsfunc=dnsfunc)), ""
            except Exception as e:  # dkimpy raises for what does not verify
                ok, why = False, str(e)
            results.append({
                "d": re.sub(r"\s", "", tags.get("d", "")),
                "s": re.sub(r"\s", "", tags.get("s", "")),
                "pass": ok,
                "why": why[:200],
            })
        sys.stdout.write(json.dumps({"id": case["id"], "results": results}) + "\n")
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
    b = sub.add_parser("sign-batch")
    b.add_argument("--keys", required=True)
    vb = sub.add_parser("verify-batch")
    vb.add_argument("--nameserver", required=True)
    args = parser.parse_args()
    commands = {
        "verify": verify,
        "arc-verify": arc_verify,
        "sign": sign,
        "sign-batch": sign_batch,
        "verify-batch": verify_batch,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
