// Browser sign-in in a real browser: a fresh `authplane serve`, set up through the REST API; openid-client plays two
// apps of one workspace (authorization URL with PKCE, code exchange, ID token checks, userinfo, logout URL), and
// Chromium, driven by playwright-core, plays the user. Every address is on 127.0.0.1.
//
//   node signin.mjs        (from this directory, after `npm ci`)
//
// Environment: AUTHPLANE_BIN (a built authplane; else it is built from the project), BROWSER_DATABASE_URL (default:
// a fresh SQLite file), AUTHPLANE_MASTER_KEY (needed with PostgreSQL; generated otherwise), CHROMIUM
// (default /usr/bin/chromium), SCREENSHOT (where to write the login page's screenshot; default: none).
// Prints "N passed, N failed" and exits non-zero when a check failed.

import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as oidc from 'openid-client';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const project = resolve(here, '../../../..');
const work = mkdtempSync(join(tmpdir(), 'authplane-browser-'));

let passed = 0;
let failed = 0;
function check(what, ok, detail = '') {
  if (ok) {
    passed++;
    console.log(`  ok   ${what}`);
  } else {
    failed++;
    console.log(`  FAIL ${what}${detail ? ': ' + detail : ''}`);
  }
  return ok;
}
async function rejects(promise) {
  try {
    await promise;
    return false;
  } catch {
    return true;
  }
}

// A port the kernel says is free now.
async function freePort() {
  const srv = createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

// The apps' side: a loopback server where the browser lands (the redirect URIs), and the workspace's logo.
const landings = [];
const appServer = createServer((req, res) => {
  if (req.url === '/logo.svg') {
    res.writeHead(200, { 'Content-Type': 'image/svg+xml' });
    res.end('<svg xmlns="http://www.w3.org/2000/svg" width="160" height="40" viewBox="0 0 160 40"><rect width="40" height="40" rx="8" fill="#0a7d33"/><path d="M12 28 20 10l8 18" stroke="#fff" stroke-width="4" fill="none"/><text x="50" y="28" font-family="sans-serif" font-size="22" font-weight="700" fill="#1f2328">Acme</text></svg>');
    return;
  }
  if (req.url.startsWith('/framed?')) {
    // A page of another origin that tries to show the sign-in page inside a frame.
    const src = new URL(req.url, appBase).searchParams.get('src');
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(`<!doctype html><title>framing</title><iframe id="f" src="${src.replace(/"/g, '&quot;')}" width="600" height="400"></iframe>`);
    return;
  }
  landings.push(req.url);
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end('landed');
});
await new Promise((r) => appServer.listen(0, '127.0.0.1', r));
const appBase = `http://127.0.0.1:${appServer.address().port}`;
const callback = `${appBase}/callback`;

// The server.
let bin = process.env.AUTHPLANE_BIN;
if (!bin) {
  bin = join(work, 'authplane');
  execFileSync('go', ['build', '-o', bin, './cmd/authplane'], { cwd: project, stdio: 'inherit' });
}
const httpPort = await freePort();
let grpcPort = await freePort();
while (grpcPort === httpPort) grpcPort = await freePort();
const base = `http://127.0.0.1:${httpPort}`;
const rootSecret = randomBytes(24).toString('base64url');
const server = spawn(bin, ['serve'], {
  cwd: work,
  env: {
    ...process.env,
    AUTHPLANE_HTTP_ADDR: `127.0.0.1:${httpPort}`,
    AUTHPLANE_GRPC_ADDR: `127.0.0.1:${grpcPort}`,
    AUTHPLANE_DATABASE_URL: process.env.BROWSER_DATABASE_URL || `sqlite:${join(work, 'authplane.db')}`,
    AUTHPLANE_ISSUER_URL: base,
    AUTHPLANE_ROOT_CLIENT_ID: 'root-operator',
    AUTHPLANE_ROOT_CLIENT_SECRET: rootSecret,
    AUTHPLANE_MASTER_KEY: process.env.AUTHPLANE_MASTER_KEY || randomBytes(32).toString('base64'),
  },
  stdio: ['ignore', 'ignore', 'pipe'],
});
let serverLog = '';
server.stderr.on('data', (d) => { serverLog = (serverLog + d).slice(-20000); });

let browser;
async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  server.kill('SIGTERM');
  appServer.close();
  rmSync(work, { recursive: true, force: true });
}

async function api(method, path, token, body, want) {
  const res = await fetch(base + path, {
    method,
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (want && res.status !== want) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : {};
}
async function clientToken(tenant, ws, id, secret) {
  const res = await fetch(`${base}/${tenant}/${ws}/oauth2/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: id, client_secret: secret }),
  });
  if (res.status !== 200) throw new Error(`token ${tenant}/${ws}: ${res.status} ${await res.text()}`);
  return (await res.json()).access_token;
}

try {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {}
    if (i > 120 || server.exitCode !== null) throw new Error('the server did not start:\n' + serverLog);
    await new Promise((r) => setTimeout(r, 250));
  }

  // Tenant, workspace with branding, pool with jane, and two apps.
  const tenant = 'acme';
  const ws = 'shop';
  const root = await clientToken('root', 'admin', 'root-operator', rootSecret);
  const created = await api('POST', '/api/admin/tenants', root, { id: tenant, name: 'Acme Corp' }, 201);
  const admin = await clientToken(tenant, 'admin', created.admin_client.client_id, created.admin_client.client_secret);
  const ad = `/api/admin/${tenant}`;
  const idp = `/api/identity/${tenant}/system`;
  await api('POST', `${ad}/servers`, admin, {
    id: ws, name: 'Shop', display_name: 'Acme Corp', logo_url: `${appBase}/logo.svg`, primary_color: '#0a7d33',
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
  }, 201);
  const sys = await api('POST', `${ad}/clients`, admin, {
    authorization_server_id: 'system', client_name: 'identity admin', grant_types: ['client_credentials'], scopes: ['identity'],
  }, 201);
  const system = await clientToken(tenant, 'system', sys.client_id, sys.client_secret);
  await api('POST', `${idp}/schemas`, system, { id: 'people', name: 'People', schema: { type: 'object', properties: { given_name: { type: 'string' }, family_name: { type: 'string' } } } }, 201);
  await api('POST', `${idp}/pools`, system, { id: 'customers', name: 'Customers', payload_schema_id: 'people', authentication_mechanisms: ['password'] }, 201);
  const password = 'Correct-horse-9';
  const jane = await api('POST', `${idp}/pools/customers/users`, system, {
    status: 'active', identifiers: [{ type: 'email', identifier: 'jane@example.com' }],
    credentials: [{ type: 'password', password }], payload: { given_name: 'Jane', family_name: 'Doe' },
  }, 201);
  await api('POST', `${ad}/servers/${ws}/idps/identity_pool`, admin, { name: 'Customers', identity_pool_id: 'customers' }, 201);
  const web = await api('POST', `${ad}/clients`, admin, {
    authorization_server_id: ws, client_name: 'Acme Shop', grant_types: ['authorization_code', 'refresh_token'],
    token_endpoint_auth_method: 'client_secret_basic', scopes: ['openid', 'profile', 'email', 'offline_access'],
    redirect_uris: [callback], post_logout_redirect_uris: [`${appBase}/bye`],
  }, 201);
  const spa = await api('POST', `${ad}/clients`, admin, {
    authorization_server_id: ws, client_name: 'Acme Support', grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'none', scopes: ['openid', 'email'], redirect_uris: [callback], trusted: true,
  }, 201);

  const issuer = new URL(`${base}/${tenant}/${ws}`);
  const insecure = { execute: [oidc.allowInsecureRequests] }; // http on loopback only
  const webApp = await oidc.discovery(issuer, web.client_id, web.client_secret, oidc.ClientSecretBasic(web.client_secret), insecure);
  const spaApp = await oidc.discovery(issuer, spa.client_id, undefined, oidc.None(), insecure);
  check('discovery: S256 only, the iss parameter, and the end-session endpoint',
    JSON.stringify(webApp.serverMetadata().code_challenge_methods_supported) === '["S256"]' &&
    webApp.serverMetadata().authorization_response_iss_parameter_supported === true &&
    webApp.serverMetadata().end_session_endpoint === `${issuer}/oauth2/logout`);

  // An authorization request built by openid-client, with PKCE, state and nonce.
  async function start(app, scope, extra = {}) {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(app, {
      redirect_uri: callback, scope, state, nonce, code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256', ...extra,
    });
    return { url, verifier, state, nonce };
  }
  async function exchange(app, req, landed) {
    return oidc.authorizationCodeGrant(app, new URL(landed), {
      pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce, idTokenExpected: true,
    });
  }

  const userDataDir = join(work, 'chromium-profile');
  mkdirSync(userDataDir);
  browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1000, height: 720 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = browser.pages()[0] || await browser.newPage();
  const atCallback = () => page.url().startsWith(callback);

  // 1. The first app: the sign-in page, consent, and back with a code.
  const r1 = await start(webApp, 'openid profile email offline_access');
  await page.goto(r1.url.href);
  check('the authorization URL shows the hosted sign-in page', page.url().startsWith(`${issuer}/login`) &&
    await page.getByLabel('Password').isVisible(), page.url());
  check('the page shows the workspace name and the app', (await page.textContent('h1')).includes('Acme Corp') &&
    (await page.textContent('main')).includes('Acme Shop'));
  const csp = (await page.request.get(page.url())).headers()['content-security-policy'] || '';
  check("the page cannot be framed (frame-ancestors 'none')", csp.includes("frame-ancestors 'none'"), csp);
  if (process.env.SCREENSHOT) {
    await page.getByLabel('Email or username').fill('jane@example.com');
    await page.screenshot({ path: process.env.SCREENSHOT });
    console.log(`  (screenshot of the sign-in page: ${process.env.SCREENSHOT})`);
  }
  const loginURL = page.url();
  const framing = await browser.newPage();
  await framing.goto(`${appBase}/framed?src=${encodeURIComponent(loginURL)}`);
  await framing.waitForLoadState('load');
  const framed = framing.frames().find((f) => f !== framing.mainFrame());
  check('the browser refuses to show the sign-in page inside a frame',
    !!framed && (await framed.$('input[name=password]').catch(() => null)) === null, framed && framed.url());
  await framing.close();
  await page.getByLabel('Email or username').fill('jane@example.com');
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState();
  check('an untrusted app gets the consent page listing its scopes',
    (await page.textContent('main')).includes('Acme Shop wants access') && (await page.textContent('main')).includes('See your email address'));
  await Promise.all([page.waitForURL((u) => u.href.startsWith(callback)), page.getByRole('button', { name: 'Allow' }).click()]);
  const landed1 = page.url();
  check('the browser lands on the loopback callback with code, state and iss',
    new URL(landed1).searchParams.get('iss') === issuer.href && new URL(landed1).searchParams.get('state') === r1.state, landed1);
  const t1 = await exchange(webApp, r1, landed1);
  const c1 = t1.claims();
  check('openid-client exchanges the code and accepts the ID token (nonce, sid, auth_time)',
    c1.sub === jane.id && c1.nonce === r1.nonce && !!c1.sid && typeof c1.auth_time === 'number' && c1.email === 'jane@example.com');
  check('a refresh token comes with the code of a client that has the grant', !!t1.refresh_token);
  const info = await oidc.fetchUserInfo(webApp, t1.access_token, c1.sub);
  check('userinfo answers for the access token', info.sub === jane.id && info.email === 'jane@example.com');

  // 2. The second app: single sign-on, no form.
  const r2 = await start(spaApp, 'openid email');
  await page.goto(r2.url.href);
  await page.waitForURL((u) => u.href.startsWith(callback));
  check('a second app of the workspace signs the user in without the form', atCallback(), page.url());
  const t2 = await exchange(spaApp, r2, page.url());
  check('the second app gets tokens for the same user', t2.claims().sub === jane.id);

  // 3. Logout ends the session for both apps.
  const bye = oidc.buildEndSessionUrl(webApp, { id_token_hint: t1.id_token, post_logout_redirect_uri: `${appBase}/bye`, state: 'bye-1' });
  await page.goto(bye.href);
  check('logout returns to the registered post-logout URI with state', page.url() === `${appBase}/bye?state=bye-1`, page.url());
  check("the first app's refresh token is refused after logout", await rejects(oidc.refreshTokenGrant(webApp, t1.refresh_token)));
  check("the second app's access token is refused at userinfo after logout", await rejects(oidc.fetchUserInfo(spaApp, t2.access_token, jane.id)));
  const r3 = await start(spaApp, 'openid email');
  await page.goto(r3.url.href);
  check('after logout the second app needs the form again', page.url().startsWith(`${issuer}/login`) && await page.getByLabel('Password').isVisible(), page.url());

  // 4. A wrong password and an unknown user show the same page.
  async function refusal(username, pw) {
    await page.getByLabel('Email or username').fill(username);
    await page.getByLabel('Password').fill(pw);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForLoadState();
    return { url: new URL(page.url()).pathname, text: (await page.textContent('main')).replace(username, '<user>') };
  }
  const wrong = await refusal('jane@example.com', 'not-her-password');
  const unknown = await refusal('nobody@example.com', 'not-her-password');
  check('a wrong password and an unknown user show the same page',
    wrong.url === unknown.url && wrong.text === unknown.text && wrong.text.includes('The username or password is incorrect.'),
    JSON.stringify({ wrong, unknown }));
  await page.getByLabel('Email or username').fill('jane@example.com');
  await page.getByLabel('Password').fill(password);
  await Promise.all([page.waitForURL((u) => u.href.startsWith(callback)), page.getByRole('button', { name: 'Sign in' }).click()]);
  const t3 = await exchange(spaApp, r3, page.url());
  check('signing in again after the refusals works', t3.claims().sub === jane.id);
} catch (err) {
  check('the browser sign-in run', false, (err && err.stack) || String(err));
  if (serverLog) console.log('--- server log (tail) ---\n' + serverLog.slice(-4000));
} finally {
  await cleanup();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
