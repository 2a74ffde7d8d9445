// A command-line DPoP (RFC 9449) client for the resource-server tests: gets a DPoP-bound
// access token from the provider fixture (provider.mjs) and makes DPoP proofs for one
// request to the resource server, good ones and attack variants, with an independent JOSE
// implementation (node `jose`, the one oidc-provider uses).
//
//   node tests/oidc/dpop.mjs <issuer-url> <resource> <api-url> \
//        [--alg ES256|RS256|PS256|EdDSA] [--method GET] [--scope read] [--no-bearer]
//
//   node tests/oidc/dpop.mjs http://127.0.0.1:NNNN api://dpop http://127.0.0.1:3000/me
//
// 1. Generates a key pair for --alg (default ES256; RS256 and PS256 use RSA 2048, EdDSA
//    Ed25519).
// 2. POSTs <issuer-url>/token (client_credentials, test-client/test-secret via
//    client_secret_basic, resource=<resource>, scope=--scope (default read)) with a DPoP
//    proof for POST <issuer-url>/token. An answer `use_dpop_nonce` (the provider runs with
//    DPOP_NONCE=1) is retried once with the `DPoP-Nonce` it returned. The answer must have
//    token_type DPoP; for a JWT access token its cnf.jkt must be our key's thumbprint.
// 3. Unless --no-bearer, also gets a plain Bearer token for the same resource (no DPoP).
// 4. Prints ONE JSON object on stdout (nothing else goes to stdout):
//
//    access_token, token_type ("DPoP"), expires_in, scope, jkt (RFC 7638 SHA-256 thumbprint
//    of jwk, base64url), jwk (the public JWK), alg, htm, htu, nonce_required (the token
//    endpoint asked for a DPoP nonce), bearer_access_token (unless --no-bearer), and
//    proofs: compact JWS strings, all for htm = --method (default GET) and htu = <api-url>
//    exactly as given (not normalized), each with a fresh random jti unless said:
//
//      good          typ dpop+jwt, alg, public jwk in the header; claims jti, htm, htu, iat
//                    (now), ath = base64url(SHA-256(access_token))
//      good2         another good proof (other jti), for a second request
//      replay        the same string as good
//      wrong_method  htm POST (GET when --method is POST)
//      wrong_url     htu = <api-url> + "/other" (string concatenation)
//      wrong_ath     ath = base64url(SHA-256("not-the-access-token"))
//      no_ath        no ath claim
//      other_key     a good proof signed by a second key (its own jwk in the header): its
//                    thumbprint is not the token's cnf.jkt
//      old_iat       iat = now - 3600
//      future_iat    iat = now + 3600
//      alg_none      header {typ, alg: "none", jwk}, good claims, empty signature
//                    ("<header>.<payload>.")
//      hs256         alg HS256, HMAC-SHA256 with a random 32-byte secret, header jwk
//                    {kty: "oct", k: <the secret>}
//      private_jwk   a good proof whose header jwk is the private JWK (with d, and for RSA
//                    p, q, dp, dq, qi)
//      wrong_typ     typ "JWT"
//      no_jwk        no jwk in the header, kid = jkt instead
//      bad_signature good with the last character of its signature changed so that the
//                    signature bytes change (the character's value XOR 32: the top bit of
//                    the 6, always a significant bit)
//      query_url     htu = <api-url> + "?a=1" ("&a=1" when <api-url> already has a query):
//                    RFC 9449 htu has no query, the RS compares without it, so this one is
//                    accepted by an RS that strips the query and fragment of htu
//
// Exits 1 with a message on stderr when anything fails (bad arguments, token request
// refused, unexpected token type or binding).
import { createHmac, createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  SignJWT, calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair,
} from 'jose';

const USAGE = 'usage: node tests/oidc/dpop.mjs <issuer-url> <resource> <api-url> '
  + '[--alg ES256|RS256|PS256|EdDSA] [--method GET] [--scope read] [--no-bearer]';
const ALGS = new Set(['ES256', 'RS256', 'PS256', 'EdDSA']);
const CLIENT_ID = process.env.CLIENT_ID || 'test-client';
const CLIENT_SECRET = process.env.CLIENT_SECRET || 'test-secret';

class UsageError extends Error {}

function parseArgs(argv) {
  const positional = [];
  const options = {
    alg: 'ES256', method: 'GET', scope: 'read', bearer: true,
  };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new UsageError(`${arg} needs a value`);
      i += 1;
      return argv[i];
    };
    if (arg === '--alg') options.alg = value();
    else if (arg.startsWith('--alg=')) options.alg = arg.slice(6);
    else if (arg === '--method') options.method = value();
    else if (arg.startsWith('--method=')) options.method = arg.slice(9);
    else if (arg === '--scope') options.scope = value();
    else if (arg.startsWith('--scope=')) options.scope = arg.slice(8);
    else if (arg === '--no-bearer') options.bearer = false;
    else if (arg === '-h' || arg === '--help') {
      process.stderr.write(`${USAGE}\n`);
      process.exit(0);
    } else if (arg.startsWith('--')) throw new UsageError(`unknown option ${arg}`);
    else positional.push(arg);
  }
  if (positional.length !== 3) throw new UsageError('expected 3 arguments');
  if (!ALGS.has(options.alg)) throw new UsageError(`unsupported --alg ${options.alg}`);
  if (!options.method) throw new UsageError('--method must not be empty');
  const [issuer, resource, apiUrl] = positional;
  return {
    issuer: issuer.replace(/\/+$/, ''), resource, apiUrl, ...options,
  };
}

const b64u = (data) => Buffer.from(data).toString('base64url');
const sha256b64u = (text) => createHash('sha256').update(text, 'ascii').digest('base64url');
const now = () => Math.floor(Date.now() / 1000);

// A key pair for alg with its public JWK (with no alg/use/kid: the members that matter for
// the thumbprint and nothing else) and that JWK's RFC 7638 thumbprint.
async function dpopKey(alg) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  const privateJwk = await exportJWK(privateKey);
  const jkt = await calculateJwkThumbprint(jwk, 'sha256');
  return {
    alg, publicKey, privateKey, jwk, privateJwk, jkt,
  };
}

// A DPoP proof: claims as given (a fresh jti unless claims.jti is set), header
// {typ: dpop+jwt, alg, jwk} with overrides.
async function proof(key, claims, header = {}) {
  const protectedHeader = {
    typ: 'dpop+jwt', alg: key.alg, jwk: key.jwk, ...header,
  };
  for (const name of Object.keys(protectedHeader)) {
    if (protectedHeader[name] === undefined) delete protectedHeader[name];
  }
  return new SignJWT({ jti: randomUUID(), ...claims })
    .setProtectedHeader(protectedHeader)
    .sign(key.privateKey);
}

async function tokenRequest(opts, key) {
  const tokenUrl = `${opts.issuer}/token`;
  const body = new URLSearchParams({
    grant_type: 'client_credentials', resource: opts.resource, scope: opts.scope,
  });
  const basic = Buffer.from(`${encodeURIComponent(CLIENT_ID)}:${encodeURIComponent(CLIENT_SECRET)}`).toString('base64');
  let nonce;
  let nonceRequired = false;
  for (let attempt = 0; attempt < 2; attempt += 1) {
    const headers = {
      authorization: `Basic ${basic}`,
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    };
    if (key) {
      headers.dpop = await proof(key, {
        htm: 'POST', htu: tokenUrl, iat: now(), ...(nonce ? { nonce } : {}),
      });
    }
    let response;
    try {
      response = await fetch(tokenUrl, {
        method: 'POST', headers, body, signal: AbortSignal.timeout(15000),
      });
    } catch (err) {
      throw new Error(`POST ${tokenUrl}: ${err.cause?.message || err.message}`);
    }
    const text = await response.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`POST ${tokenUrl}: ${response.status}, not JSON: ${text.slice(0, 300)}`);
    }
    if (key && !nonce && json.error === 'use_dpop_nonce' && response.headers.get('dpop-nonce')) {
      nonce = response.headers.get('dpop-nonce');
      nonceRequired = true;
      continue;
    }
    if (!response.ok || json.error) {
      throw new Error(`POST ${tokenUrl} (${key ? 'DPoP' : 'Bearer'}): ${response.status} ${text.slice(0, 300)}`);
    }
    if (typeof json.access_token !== 'string' || !json.access_token) {
      throw new Error(`POST ${tokenUrl}: no access_token in ${text.slice(0, 300)}`);
    }
    return { ...json, nonceRequired };
  }
  throw new Error(`POST ${tokenUrl}: use_dpop_nonce again after retrying with the DPoP-Nonce`);
}

// The claims of a JWT access token, or undefined for an opaque one.
function jwtClaims(token) {
  if (token.split('.').length !== 3) return undefined;
  try {
    return decodeJwt(token);
  } catch {
    return undefined;
  }
}

// The compact JWS with the last character of its signature changed so that the decoded
// signature changes too (XOR 32 flips the top, always significant, bit of that character).
function tamperSignature(jws) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = jws.at(-1);
  const index = alphabet.indexOf(last);
  if (index < 0) throw new Error('cannot tamper with the signature: not base64url');
  const tampered = `${jws.slice(0, -1)}${alphabet[index ^ 32]}`;
  const before = Buffer.from(jws.split('.')[2], 'base64url');
  const after = Buffer.from(tampered.split('.')[2], 'base64url');
  if (before.equals(after)) throw new Error('tampering did not change the signature bytes');
  return tampered;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const key = await dpopKey(opts.alg);
  const otherKey = await dpopKey(opts.alg);

  const token = await tokenRequest(opts, key);
  if (token.token_type !== 'DPoP') {
    throw new Error(`expected token_type DPoP, got ${JSON.stringify(token.token_type)}`);
  }
  const claims = jwtClaims(token.access_token);
  if (claims && claims.cnf?.jkt !== key.jkt) {
    throw new Error(`the access token's cnf is ${JSON.stringify(claims.cnf)}, expected {"jkt":"${key.jkt}"}`);
  }

  let bearer;
  if (opts.bearer) {
    bearer = await tokenRequest(opts, undefined);
    if (bearer.token_type !== 'Bearer') {
      throw new Error(`expected token_type Bearer without DPoP, got ${JSON.stringify(bearer.token_type)}`);
    }
  }

  const htm = opts.method;
  const htu = opts.apiUrl;
  const ath = sha256b64u(token.access_token);
  const good = () => ({
    htm, htu, iat: now(), ath,
  });

  const proofs = {};
  proofs.good = await proof(key, good());
  proofs.good2 = await proof(key, good());
  proofs.replay = proofs.good;
  proofs.wrong_method = await proof(key, { ...good(), htm: htm.toUpperCase() === 'POST' ? 'GET' : 'POST' });
  proofs.wrong_url = await proof(key, { ...good(), htu: `${htu}/other` });
  proofs.wrong_ath = await proof(key, { ...good(), ath: sha256b64u('not-the-access-token') });
  {
    const { ath: _, ...noAth } = good();
    proofs.no_ath = await proof(key, noAth);
  }
  proofs.other_key = await proof(otherKey, good());
  proofs.old_iat = await proof(key, { ...good(), iat: now() - 3600 });
  proofs.future_iat = await proof(key, { ...good(), iat: now() + 3600 });
  {
    const header = { typ: 'dpop+jwt', alg: 'none', jwk: key.jwk };
    const payload = { jti: randomUUID(), ...good() };
    proofs.alg_none = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}.`;
  }
  {
    const secret = randomBytes(32);
    const header = { typ: 'dpop+jwt', alg: 'HS256', jwk: { kty: 'oct', k: b64u(secret) } };
    const payload = { jti: randomUUID(), ...good() };
    const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`;
    proofs.hs256 = `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
  }
  proofs.private_jwk = await proof(key, good(), { jwk: key.privateJwk });
  proofs.wrong_typ = await proof(key, good(), { typ: 'JWT' });
  proofs.no_jwk = await proof(key, good(), { jwk: undefined, kid: key.jkt });
  proofs.bad_signature = tamperSignature(proofs.good);
  proofs.query_url = await proof(key, { ...good(), htu: `${htu}${htu.includes('?') ? '&' : '?'}a=1` });

  const out = {
    access_token: token.access_token,
    token_type: token.token_type,
    expires_in: token.expires_in,
    scope: token.scope,
    jkt: key.jkt,
    jwk: key.jwk,
    alg: opts.alg,
    htm,
    htu,
    nonce_required: token.nonceRequired,
    proofs,
  };
  if (bearer) out.bearer_access_token = bearer.access_token;
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

try {
  await main();
} catch (err) {
  process.stderr.write(`dpop.mjs: ${err.message}\n`);
  if (err instanceof UsageError) process.stderr.write(`${USAGE}\n`);
  process.exit(1);
}
