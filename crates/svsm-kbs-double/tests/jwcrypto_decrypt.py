#!/usr/bin/python3
"""Independent JWE consumer for svsm-kbs-double tests: decrypts the flattened JWE on stdin with the private
EC JWK in argv[1] using jwcrypto and writes the plaintext to stdout."""
import json
import sys

from jwcrypto import jwe, jwk

key = jwk.JWK(**json.loads(sys.argv[1]))
token = jwe.JWE()
token.deserialize(sys.stdin.read(), key=key)
sys.stdout.buffer.write(token.payload)
