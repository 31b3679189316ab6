// Single sign-on against a real OpenID Connect provider on loopback:
// npm's oidc-provider (OpenID Certified), with its development sign-in
// pages, a confidential client for the console and people in groups.
// Signing in gives the role the groups map to, a person in no mapped group
// is refused, signing out ends the provider's session too, and a tampered
// state or nonce is refused.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Page } from '@playwright/test';
import Provider from 'oidc-provider';
import { test as base, expect, CanaryServer, FakeUpstream } from '../fixtures/canary';

const CLIENT_ID = 'canary-console';
const CLIENT_SECRET = 'a client secret only the provider and canary know';
/** Who is in which group at the provider. */
const GROUPS: Record<string, string[]> = { sam: ['engineering', 'sre'], guest: ['contractors'] };

interface Sso {
  server: CanaryServer;
  issuer: string;
}

const test = base.extend<{ sso: Sso }>({
  sso: async ({}, use, testInfo) => {
    // The provider's port first: canary's config names it.
    let handle: http.RequestListener = (_req, res) => res.writeHead(503).end();
    const idp = http.createServer((req, res) => handle(req, res));
    await new Promise<void>((resolve) => idp.listen(0, '127.0.0.1', resolve));
    const issuer = `http://127.0.0.1:${(idp.address() as { port: number }).port}`;

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'canary-sso-'));
    const production = new FakeUpstream('v2.6.0');
    const canary = new FakeUpstream('v2.7.0');
    await production.start();
    await canary.start();
    const server = new CanaryServer(
      dir,
      production,
      canary,
      `auth:
  oidc:
    issuer: "${issuer}"
    client_id: ${CLIENT_ID}
    client_secret: "${CLIENT_SECRET}"
    redirect_url: "__CONSOLE__/admin/canary/auth/oidc/callback"
    scopes: [profile, groups]
    roles: { admin: [platform], operator: [sre], viewer: [engineering] }
    label: "Sign in with Example SSO"
`,
    );
    // The second start knows the console's port for its redirect URL.
    await server.start();
    await server.stop();
    await server.start();

    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: CLIENT_ID,
          client_secret: CLIENT_SECRET,
          redirect_uris: [`${server.consoleUrl}auth/oidc/callback`],
          post_logout_redirect_uris: [server.consoleUrl],
        },
      ],
      claims: { openid: ['sub'], profile: ['preferred_username'], groups: ['groups'] },
      scopes: ['openid', 'profile', 'groups'],
      // The groups go in the ID token itself, which is what canary reads.
      conformIdTokenClaims: false,
      findAccount: async (_ctx: unknown, id: string) => ({
        accountId: id,
        claims: async () => ({ sub: id, preferred_username: id, groups: GROUPS[id] ?? [] }),
      }),
      features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
    });
    handle = provider.callback();
    try {
      await use({ server, issuer });
    } finally {
      await server.stop();
      await production.stop();
      await canary.stop();
      idp.closeAllConnections();
      await new Promise<void>((resolve) => idp.close(() => resolve()));
      if (testInfo.status !== testInfo.expectedStatus) {
        await testInfo.attach('canary.log', { body: server.log, contentType: 'text/plain' });
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
});

/** Signs in at the provider's development pages as `login` (any password). */
async function signInAtProvider(page: Page, login: string) {
  await page.getByTestId('login-sso').click();
  await atProvider(page, login);
}

/** The provider's development pages: sign in as `login`, then consent. */
async function atProvider(page: Page, login: string) {
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any password');
  await page.locator('button[type="submit"]').click();
  // Consent to the console's access, the first time.
  await page.locator('button[type="submit"]').click();
}

test('a person signs in with the provider, gets the role of their groups, and signs out there too', async ({ page, sso }, testInfo) => {
  await page.goto(sso.server.consoleUrl);
  await expect(page.getByTestId('login-sso')).toHaveText('Sign in with Example SSO');
  // Only single sign-on here: no password form that could never work.
  await expect(page.getByTestId('login-user')).toBeHidden();
  await signInAtProvider(page, 'sam');
  await expect(page).toHaveURL(sso.server.consoleUrl);
  const identity = page.getByTestId('identity');
  await expect(identity).toContainText('sam');
  await expect(identity).toContainText('operator');
  // The session works for the console's live stream and commands.
  await expect(page.getByTestId('connection-status')).toHaveText('Live');
  await testInfo.attach('signed-in', { body: await page.screenshot(), contentType: 'image/png' });

  // Sign out: the console's session ends, then the provider's.
  await page.getByTestId('sign-out').click();
  await expect(page).toHaveURL(new RegExp(`^${sso.issuer}/session/end`));
  await page.locator('button[autofocus], button[type="submit"]').first().click();
  await expect(page).toHaveURL(sso.server.consoleUrl);
  await expect(page.getByTestId('login-sso')).toBeVisible();
  // Signing in again goes to the provider's sign-in page, not straight through.
  await page.getByTestId('login-sso').click();
  await expect(page.locator('input[name="login"]')).toBeVisible();
});

test('a person in no mapped group is refused with the reason', async ({ page, sso }) => {
  await page.goto(sso.server.consoleUrl);
  await signInAtProvider(page, 'guest');
  await expect(page.getByTestId('login-error')).toContainText('none of your groups gives a role in canary');
  await expect(page.getByTestId('login-sso')).toBeVisible();
  // The error is taken off the address: a reload does not show it again.
  expect(new URL(page.url()).search).toBe('');
});

test('a tampered state or nonce is refused', async ({ page, sso }) => {
  await page.goto(sso.server.consoleUrl);
  // A sign-in begun as the button begins it (its login-state cookie lands
  // in this browser), then sent to the provider with one parameter changed.
  const tampered = async (name: string) => {
    const start = await page.request.get(`${sso.server.consoleUrl}auth/oidc/start`, { maxRedirects: 0 });
    expect(start.status()).toBe(303);
    const authorize = new URL(start.headers()['location']);
    expect(authorize.searchParams.get(name)).toBeTruthy();
    authorize.searchParams.set(name, 'tampered');
    await page.goto(authorize.toString());
  };
  // Another state comes back than the one this browser's sign-in holds.
  await tampered('state');
  await atProvider(page, 'sam');
  await expect(page.getByTestId('login-error')).toContainText("another sign-in's state");
  // The ID token carries another nonce than the one asked for (already
  // signed in at the provider: it answers at once).
  await tampered('nonce');
  await expect(page.getByTestId('login-error')).toContainText('nonce');
  await expect(page.getByTestId('identity')).toHaveCount(0);
});
