// A real OpenID provider (panva/oidc-provider 9) for tests/suite/oidc_provider.rs and examples/oidc.rs.
//
//   npm ci --prefix tests/oidc
//   node tests/oidc/provider.mjs            # PORT=0 (default): a free port is chosen
//   PORT=4000 node tests/oidc/provider.mjs
//
// The first stdout line is `LISTENING http://127.0.0.1:NNNN`; that URL is the issuer
// (discovery at /.well-known/openid-configuration, keys at /jwks, tokens at /token).
//
// Keys are generated at start-up (RSA 2048 kid "rsa-1", EC P-256 kid "ec-1", Ed25519
// kid "ed-1"), so every run has fresh keys. One client, `test-client` / `test-secret`
// (client_secret_basic or client_secret_post), may use the client_credentials grant for
// these resources; each issues JWT access tokens (typ at+jwt) signed with its own algorithm:
//
//   resource (= aud)   alg     scope
//   api://rs256        RS256   read write
//   api://es256        ES256   read write
//   api://eddsa        EdDSA   read write
//   api://orders       RS256   orders:read orders:write
//
// curl -s -u test-client:test-secret -d grant_type=client_credentials \
//      -d resource=api://orders -d scope=orders:read http://127.0.0.1:NNNN/token
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import Provider, { errors } from 'oidc-provider';

const CLIENT_ID = process.env.CLIENT_ID || 'test-client';
const CLIENT_SECRET = process.env.CLIENT_SECRET || 'test-secret';

const RESOURCES = {
  'api://rs256': { alg: 'RS256', scope: 'read write' },
  'api://es256': { alg: 'ES256', scope: 'read write' },
  'api://eddsa': { alg: 'EdDSA', scope: 'read write' },
  'api://orders': { alg: 'RS256', scope: 'orders:read orders:write' },
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

// Listen first (port 0 lets the OS choose), then build the provider with the issuer that
// names the real port: no race between choosing a port and binding it.
const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number.parseInt(process.env.PORT || '0', 10), '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

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
  ],
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  jwks,
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'api://rs256',
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => {
        const rs = RESOURCES[resourceIndicator];
        if (!rs) throw new errors.InvalidTarget();
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
