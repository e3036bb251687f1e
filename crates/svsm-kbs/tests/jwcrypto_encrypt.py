#!/usr/bin/python3
"""Independent JWE producer for svsm-kbs tests (jwcrypto, not RustCrypto): encrypts stdin's bytes to the EC
public JWK in argv[1] with ECDH-ES+A256KW / A256GCM and prints the flattened JSON serialisation with every
header member protected, the shape Trustee sends. jwcrypto's compact form moves epk into the protected
header; the five compact parts are the flattened members (RFC 7516 sections 7.1, 7.2.2)."""
import json
import sys

from jwcrypto import jwe, jwk

key = jwk.JWK(**json.loads(sys.argv[1]))
token = jwe.JWE(sys.stdin.buffer.read(), json.dumps({"alg": "ECDH-ES+A256KW", "enc": "A256GCM"}))
token.add_recipient(key)
protected, encrypted_key, iv, ciphertext, tag = token.serialize(compact=True).split(".")
print(json.dumps({"protected": protected, "encrypted_key": encrypted_key, "iv": iv,
                  "ciphertext": ciphertext, "tag": tag}))
