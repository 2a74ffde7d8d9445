// A real OpenID provider (panva/oidc-provider 9) for tests/suite/oidc_provider.rs and examples/oidc.rs.
//
//   npm ci --prefix tests/oidc
//   node tests/oidc/provider.mjs            # PORT=0 (default): a free port is chosen
//   PORT=4000 node tests/oidc/provider.mjs
//
// The first stdout line is `LISTENING http://127.0.0.1:NNNN`; that URL is the issuer
// (discovery at /.well-known/openid-configuration, keys at /jwks, tokens at /token,
// RFC 7662 introspection at /token/introspection, RFC 7009 revocation at /token/revocation;
// discovery names them as introspection_endpoint and revocation_endpoint).
//
// Keys are generated at start-up (RSA 2048 kid "rsa-1", EC P-256 kid "ec-1", Ed25519
// kid "ed-1"), so every run has fresh keys.
//
// Clients (each may authenticate with client_secret_basic or client_secret_post):
//
//   client_id        secret            role
//   test-client      test-secret       gets tokens: client_credentials grant only
//   api-client       api-secret        resource server: no grants, introspects (plain JSON)
//   api-jwt-client   api-jwt-secret    resource server: no grants, introspects; registered
//                                      introspection_signed_response_alg RS256, so with
//                                      `Accept: application/token-introspection+jwt` it gets
//                                      an RFC 9701 JWT response (typ token-introspection+jwt)
//
// Resources for test-client's client_credentials grant (resource = aud; without `resource`,
// api://rs256). JWT ones issue access tokens (typ at+jwt) signed with their own algorithm;
// opaque ones issue opaque access tokens, known only to the provider:
//
//   resource (= aud)     format   alg     TTL     scope
//   api://rs256          jwt      RS256   600 s   read write
//   api://es256          jwt      ES256   600 s   read write
//   api://eddsa          jwt      EdDSA   600 s   read write
//   api://orders         jwt      RS256   600 s   orders:read orders:write
//   api://dpop           jwt      ES256   600 s   read write  (for DPoP tests; any resource works)
//   api://opaque         opaque   -       600 s   read write
//   api://opaque-short   opaque   -       2 s     read write  (for expiry tests)
//
// DPoP (RFC 9449, features.dPoP): a token request that carries a `DPoP` proof header gets a
// DPoP-bound access token, for any resource: token_type "DPoP", and the key's RFC 7638
// thumbprint as cnf.jkt (in the JWT's claims; in the introspection answer of an opaque
// token, where token_type is "DPoP" too). Without the header, a Bearer token as before.
// Proof algorithms accepted: ES256/384/512, RS256/384/512, PS256/384/512, Ed25519, EdDSA
// (discovery: dpop_signing_alg_values_supported). A proof is checked for typ dpop+jwt, its
// signature under the embedded jwk, htm POST, htu <issuer>/token, iat within 300 s of now,
// and jti not seen before. No nonce by default; DPOP_NONCE=1 requires one: the first
// request is answered 400 use_dpop_nonce with a `DPoP-Nonce` header to put in the proof's
// `nonce` claim. tests/oidc/dpop.mjs is a client that gets such a token and prints proofs.
//
// Introspection policy: the resource-server clients (api-client, api-jwt-client) may
// introspect any access token; any other client only the tokens issued to it; otherwise the
// answer is {"active":false}. Opaque tokens are introspected by oidc-provider itself. It
// refuses JWTs (400 unsupported_token_type), so this fixture answers for them: after the
// caller has authenticated, a JWT access token whose signature (our keys), typ at+jwt, iss
// and exp check out is active, and the response is its claims plus active and token_type
// ("DPoP" when the claims have cnf.jkt, else "Bearer").
// Revocation policy: only the client a token was issued to may revoke it (another client
// gets 400 invalid_request). Revoking an opaque token makes it inactive; JWTs cannot be
// revoked (400 unsupported_token_type).
//
// curl -s -u test-client:test-secret -d grant_type=client_credentials \
//      -d resource=api://orders -d scope=orders:read http://127.0.0.1:NNNN/token
// curl -s -u test-client:test-secret -d grant_type=client_credentials \
//      -d resource=api://opaque -d scope=read http://127.0.0.1:NNNN/token
// curl -s -u api-client:api-secret -d token=TOKEN http://127.0.0.1:NNNN/token/introspection
// curl -s -u test-client:test-secret -d token=TOKEN http://127.0.0.1:NNNN/token/revocation
// curl -s -u api-jwt-client:api-jwt-secret -H 'Accept: application/token-introspection+jwt' \
//      -d token=TOKEN http://127.0.0.1:NNNN/token/introspection
//
// node tests/oidc/dpop.mjs http://127.0.0.1:NNNN api://dpop http://127.0.0.1:3000/me
//
// Environment: PORT, CLIENT_ID/CLIENT_SECRET (test-client), API_CLIENT_ID/API_CLIENT_SECRET
// (api-client), API_JWT_CLIENT_ID/API_JWT_CLIENT_SECRET (api-jwt-client), DPOP_NONCE,
// EXIT_ON_STDIN_CLOSE.
import {
  createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, verify,
} from 'node:crypto';
import { createServer } from 'node:http';
import Provider, { errors } from 'oidc-provider';

const CLIENT_ID = process.env.CLIENT_ID || 'test-client';
const CLIENT_SECRET = process.env.CLIENT_SECRET || 'test-secret';
const API_CLIENT_ID = process.env.API_CLIENT_ID || 'api-client';
const API_CLIENT_SECRET = process.env.API_CLIENT_SECRET || 'api-secret';
const API_JWT_CLIENT_ID = process.env.API_JWT_CLIENT_ID || 'api-jwt-client';
const API_JWT_CLIENT_SECRET = process.env.API_JWT_CLIENT_SECRET || 'api-jwt-secret';
// DPOP_NONCE=1: the token endpoint requires a server-provided DPoP nonce (RFC 9449 §8).
const DPOP_NONCE = ['1', 'true', 'yes'].includes(String(process.env.DPOP_NONCE || '').toLowerCase());

// Clients that may introspect every access token (the resource servers).
const RESOURCE_SERVER_CLIENTS = new Set([API_CLIENT_ID, API_JWT_CLIENT_ID]);

const RESOURCES = {
  'api://rs256': { alg: 'RS256', scope: 'read write' },
  'api://es256': { alg: 'ES256', scope: 'read write' },
  'api://eddsa': { alg: 'EdDSA', scope: 'read write' },
  'api://orders': { alg: 'RS256', scope: 'orders:read orders:write' },
  'api://dpop': { alg: 'ES256', scope: 'read write' },
  'api://opaque': { format: 'opaque', scope: 'read write', ttl: 600 },
  'api://opaque-short': { format: 'opaque', scope: 'read write', ttl: 2 },
};

function jwk(type, options, kid, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

const jwks = {
  keys: [
    jwk('rsa', { modulusLength: 2048 }, 'rsa-1', 'RS256'),
    jwk('ec', { namedCurve: 'P-256' }, 'ec-1', 'ES256'),
    jwk('ed25519', {}, 'ed-1', 'EdDSA'),
  ],
};

// kid -> { alg, public key }, to check the JWT access tokens presented for introspection.
const verificationKeys = new Map(jwks.keys.map(({ kid, alg, use, ...key }) => [
  kid,
  { alg, key: createPublicKey(createPrivateKey({ key, format: 'jwk' })) },
]));

// Listen first (port 0 lets the OS choose), then build the provider with the issuer that
// names the real port: no race between choosing a port and binding it.
const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number.parseInt(process.env.PORT || '0', 10), '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

// The caller may introspect tokens of tokenClientId.
const mayIntrospect = (client, tokenClientId) => RESOURCE_SERVER_CLIENTS.has(client.clientId)
  || client.clientId === tokenClientId;

// The claims of a JWT access token this provider issued, or undefined when its signature,
// typ, iss or exp do not check out.
function verifiedAccessToken(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  let header;
  let claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
  } catch {
    return undefined;
  }
  const key = verificationKeys.get(header?.kid);
  if (!key || header.alg !== key.alg || header.typ !== 'at+jwt') return undefined;
  const data = Buffer.from(`${parts[0]}.${parts[1]}`);
  const signature = Buffer.from(parts[2], 'base64url');
  let valid;
  switch (key.alg) {
    case 'EdDSA': valid = verify(null, data, key.key, signature); break;
    case 'ES256': valid = verify('sha256', data, { key: key.key, dsaEncoding: 'ieee-p1363' }, signature); break;
    default: valid = verify('sha256', data, key.key, signature);
  }
  if (!valid || claims?.iss !== issuer) return undefined;
  if (typeof claims.exp !== 'number' || claims.exp <= Math.floor(Date.now() / 1000)) return undefined;
  return claims;
}

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      client_id: API_CLIENT_ID,
      client_secret: API_CLIENT_SECRET,
      grant_types: [],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      client_id: API_JWT_CLIENT_ID,
      client_secret: API_JWT_CLIENT_SECRET,
      grant_types: [],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
      introspection_signed_response_alg: 'RS256',
    },
  ],
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  jwks,
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  // Algorithms accepted in DPoP proofs at the token endpoint (oidc-provider's default is
  // ES256, Ed25519 and EdDSA only).
  enabledJWA: {
    dPoPSigningAlgValues: ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'Ed25519', 'EdDSA'],
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    // RFC 9449: a token request with a `DPoP` proof header gets a DPoP-bound access token
    // (token_type DPoP, cnf.jkt); without the header, a Bearer token as before.
    dPoP: {
      enabled: true,
      ...(DPOP_NONCE
        ? { nonceSecret: randomBytes(32), requireNonce: () => true }
        : { requireNonce: () => false }),
    },
    introspection: {
      enabled: true,
      allowedPolicy: async (ctx, client, token) => mayIntrospect(client, token.clientId),
    },
    jwtIntrospection: { enabled: true },
    revocation: {
      enabled: true,
      allowedPolicy: async (ctx, client, token) => {
        if (token.clientId !== client.clientId) {
          throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        }
        return true;
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'api://rs256',
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => {
        const rs = RESOURCES[resourceIndicator];
        if (!rs) throw new errors.InvalidTarget();
        if (rs.format === 'opaque') {
          return {
            scope: rs.scope,
            audience: resourceIndicator,
            accessTokenTTL: rs.ttl,
            accessTokenFormat: 'opaque',
          };
        }
        return {
          scope: rs.scope,
          audience: resourceIndicator,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: rs.alg } },
        };
      },
    },
  },
});

provider.on('server_error', (ctx, err) => {
  console.error('server_error', err);
});

// oidc-provider refuses to introspect JWTs (unsupported_token_type, raised only after the
// caller authenticated): mark those requests, then answer them below.
const structuredTokenIntrospections = new WeakSet();
provider.on('introspection.error', (ctx, err) => {
  if (err instanceof errors.UnsupportedTokenType) structuredTokenIntrospections.add(ctx);
});

const JWT_INTROSPECTION = 'application/token-introspection+jwt';
provider.use(async (ctx, next) => {
  await next();
  if (!structuredTokenIntrospections.has(ctx)) return;

  const { client, params } = ctx.oidc;
  const claims = verifiedAccessToken(String(params.token));
  let body = { active: false };
  if (claims && mayIntrospect(client, claims.client_id)) {
    const {
      sub, client_id: clientId, exp, iat, iss, jti, aud, scope, ...rest
    } = claims;
    body = {
      ...rest,
      active: true,
      sub,
      client_id: clientId,
      exp,
      iat,
      iss,
      jti,
      aud,
      scope,
      // As oidc-provider answers for opaque tokens: a DPoP-bound token (cnf.jkt, which
      // ...rest carries) is of type DPoP.
      token_type: claims.cnf?.jkt ? 'DPoP' : 'Bearer',
    };
  }

  ctx.status = 200;
  ctx.set('cache-control', 'no-store');
  // As oidc-provider does for opaque tokens (features.jwtIntrospection).
  if (client.introspectionSignedResponseAlg && ctx.accepts('json', JWT_INTROSPECTION) === JWT_INTROSPECTION) {
    const token = new provider.IdToken({}, { ctx });
    token.extra = { token_introspection: body, aud: body.aud };
    ctx.body = await token.issue({ use: 'introspection' });
    ctx.type = `${JWT_INTROSPECTION}; charset=utf-8`;
  } else {
    ctx.body = body;
    ctx.type = 'application/json; charset=utf-8';
  }
});

server.on('request', provider.callback());
console.log(`LISTENING ${issuer}`);

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The parent (the Rust test) closes our stdin when it goes away: exit then too, so no
// provider outlives a killed test run.
if (process.env.EXIT_ON_STDIN_CLOSE) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  process.stdin.resume();
}
