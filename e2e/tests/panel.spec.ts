// canary inside a team's admin panel: served under the panel's path
// prefix, where the console, its API calls and its live stream all work,
// with a link back to the panel in the header.
import { test, expect } from '../fixtures/canary';

test.use({
  rollout: {
    server: ['path_prefix: "/ops"', 'panel_link: { url: "https://panel.example.com/deploys", label: "Admin panel" }'],
  },
});

test('the console works under the panel path prefix and links back to the panel', async ({ page, setup, dashboard }, testInfo) => {
  expect(new URL(setup.server.consoleUrl).pathname).toBe('/ops/admin/canary/');
  // The live stream connects under the prefix.
  await expect(dashboard.connection).toHaveText('Live');
  await expect(dashboard.statusLine).toContainText('Production only');
  const back = page.getByTestId('panel-link');
  await expect(back).toHaveText('← Admin panel');
  await expect(back).toHaveAccessibleName('Admin panel');
  await expect(back).toHaveAttribute('href', 'https://panel.example.com/deploys');
  // A command goes through the API under the prefix, and its state comes back on the stream.
  await dashboard.startCanary('v2.7.0', '25');
  await expect(dashboard.statusLine).toContainText('Canary at 25 %', { timeout: 20_000 });
  const served = await setup.server.sendTraffic(40);
  expect(Object.keys(served).sort()).toEqual(['v2.6.0', 'v2.7.0']);
  await expect(dashboard.auditEntries.filter({ hasText: 'Start' }).first()).toContainText('by local');
  await dashboard.screenshot(testInfo, 'under-a-path-prefix');
});

test('under the prefix the service worker registers at the console and alerts can be turned on', async ({ page, context, setup }) => {
  await context.grantPermissions(['notifications']);
  // Chromium's PushManager only talks to Google's push service: its
  // subscribe hands out a subscription at Google's endpoint here.
  await page.addInitScript(() => {
    let held: object | null = null;
    // An uncompressed P-256 point (the curve's generator) and 16 bytes.
    const p256dh = 'BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU';
    PushManager.prototype.subscribe = async function () {
      const endpoint = 'https://fcm.googleapis.com/fcm/send/under-a-prefix';
      held = { endpoint, options: {}, toJSON: () => ({ endpoint, expirationTime: null, keys: { p256dh, auth: 'AAECAwQFBgcICQoLDA0ODw' } }) };
      return held as PushSubscription;
    };
    PushManager.prototype.getSubscription = async function () {
      return held as PushSubscription | null;
    };
  });
  await page.goto(setup.server.consoleUrl);
  await page.getByTestId('push').locator('summary').click();
  await page.getByTestId('push-save').click();
  await expect(page.getByTestId('push-note')).toContainText('Saved: this device gets these alerts');
  const scope = await page.evaluate(async () => (await navigator.serviceWorker.ready).scope);
  expect(new URL(scope).pathname).toBe('/ops/admin/canary/');
  await expect(page.getByTestId('push-device')).toContainText('(this device)');
});
