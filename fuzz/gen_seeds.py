#!/usr/bin/env python3
"""Writes the committed seed inputs under fuzz/seeds/<target>/ (run from anywhere; needs
PyJWT and cryptography). The seeds use the crate's bundled test keys and the fuzz targets'
fixed clock (NOW = 1700000000), so valid tokens stay valid. Input formats: see the doc
comment at the top of each fuzz target."""
import base64, json, os, pathlib
import jwt
from cryptography.hazmat.primitives import serialization

ROOT = pathlib.Path(__file__).resolve().parent
KEYS = ROOT.parent / "src" / "testing"
OUT = ROOT / "seeds"
NOW = 1_700_000_000
ISS, ISS2, AUD = "https://issuer.test", "https://second.test", "api"
SECRET = b"0123456789abcdef" * 4

def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def pem(name): return (KEYS / name).read_bytes()
def int_b64(i): return b64(i.to_bytes((i.bit_length() + 7) // 8, "big"))

PRIV = {"hs": ("HS256", SECRET), "rsa": ("RS256", pem("rsa_private.pem")),
        "p256": ("ES256", pem("p256_private.pem")), "p384": ("ES384", pem("p384_private.pem")),
        "ed": ("EdDSA", pem("ed25519_private.pem"))}

def jwk(kid):
    alg = PRIV[kid][0]
    if kid == "hs":
        return {"kty": "oct", "k": b64(SECRET), "alg": alg, "use": "sig", "kid": kid}
    pub = serialization.load_pem_public_key(pem({"rsa": "rsa_public.pem", "p256": "p256_public.pem",
        "p384": "p384_public.pem", "ed": "ed25519_public.pem"}[kid]))
    if kid == "rsa":
        n = pub.public_numbers()
        return {"kty": "RSA", "n": int_b64(n.n), "e": int_b64(n.e), "alg": alg, "use": "sig", "kid": kid}
    if kid == "ed":
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64(raw), "alg": alg, "use": "sig", "kid": kid}
    n = pub.public_numbers(); size = 32 if kid == "p256" else 48
    return {"kty": "EC", "crv": "P-256" if kid == "p256" else "P-384",
            "x": b64(n.x.to_bytes(size, "big")), "y": b64(n.y.to_bytes(size, "big")),
            "alg": alg, "use": "sig", "kid": kid}

def token(kid, claims=None, headers=None, drop=()):
    alg, key = PRIV[kid]
    c = {"iss": ISS, "aud": AUD, "sub": "u1", "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 300}
    c.update(claims or {})
    for k in drop: c.pop(k, None)
    h = {"kid": kid}; h.update(headers or {})
    return jwt.encode(c, key, algorithm=alg, headers=h)

def write(target, name, data):
    d = OUT / target; d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())

valid = token("hs")
profile = {"client_id": "c1", "jti": "j1", "tenant": "t1"}

# validate: mode 0 = raw token text, mode 1 = signer byte + header 0x00 payload.
v = {
    "hs256": valid, "es256": token("p256"), "es384": token("p384"), "eddsa": token("ed"),
    "rs256": token("rsa"), "strict_profile": token("p256", profile, {"typ": "at+jwt"}),
    "second_issuer": token("ed", {"iss": ISS2}), "expired": token("hs", {"exp": NOW - 3600}),
    "aud_array": token("hs", {"aud": ["x", AUD]}), "float_dates": token("hs", {"exp": NOW + 0.5e3, "nbf": 1.5}),
    "no_exp": token("hs", drop=("exp",)), "crit": token("hs", headers={"crit": ["exp"]}),
    "alg_none": b64(b'{"alg":"none"}') + "." + b64(json.dumps({"iss": ISS}).encode()) + ".",
    "jwe_shape": "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", "dots": "." * 64, "not_jwt": "not-a-jwt",
    "bearer_quoted": '"Bearer ' + valid + '"',
}
for name, t in v.items():
    write("validate", name, b"\x00" + t.encode())
claims = json.dumps({"iss": ISS, "aud": AUD, "exp": NOW + 60, "sub": "s"}).encode()
write("validate", "signed_hs256_header", b"\x01\x00" + b'{"alg":"HS256","kid":"hs","typ":"at+jwt"}' + b"\x00" + claims)
write("validate", "signed_es256_payload", b"\x01\x03" + claims)
write("validate", "signed_dup_header", b"\x01\x00" + b'{"alg":"HS256","alg":"none"}' + b"\x00" + claims)

# sources: lines `name: value`, and `?query`.
s = {
    "bearer": f"authorization: Bearer {valid}\n",
    "bearer_twice": "authorization: Bearer a.b.c\nauthorization: Bearer a.b.c\n",
    "basic": "authorization: Basic dXNlcjpwYXNz\n",
    "cookies": f"cookie: theme=dark; session={valid}\ncookie: session={valid}; x=\"y\"\n",
    "cookie_conflict": "cookie: session=a\ncookie: session=b\ncookie: session=\"\"\n",
    "x_token": f"x-token: {valid}\n",
    "x_auth": f"x-auth: token   {valid}  \n",
    "query": f"?access_token={valid}&x=1\n",
    "query_twice": "?access_token=a&access_token=%41+b&=&&\n",
    "two_places": f"authorization: Bearer {valid}\n?access_token={valid}\n",
    "obs_text": "authorization: Bearer \xff\xfe\ncookie: session=\xc3\xa9\n",
}
for name, t in s.items():
    write("sources", name, t.encode("latin-1") if name == "obs_text" else t.encode())

# jwks: mode 0 = JSON text (a set, or one JWK).
kids = ["hs", "rsa", "p256", "p384", "ed"]
allset = {"keys": [jwk(k) for k in kids]}
j = {
    "all": json.dumps(allset), "rsa_jwk": json.dumps(jwk("rsa")), "ed_jwk": json.dumps(jwk("ed")),
    "ec_no_alg": json.dumps({"keys": [{k: v for k, v in jwk("p256").items() if k != "alg"}]}),
    "enc_key": json.dumps({"keys": [dict(jwk("rsa"), use="enc", alg="RSA-OAEP")]}),
    "dup_kid": json.dumps({"keys": [jwk("ed"), jwk("ed")]}),
    "ed25519_alg": json.dumps({"keys": [dict(jwk("ed"), alg="Ed25519")]}),
    "empty": '{"keys":[]}',
    "discovery_like": json.dumps({"issuer": ISS, "jwks_uri": "https://issuer.test/jwks", "keys": [jwk("p256")]}),
}
for name, t in j.items():
    write("jwks", name, b"\x00" + t.encode())
print("seeds written to", OUT)
