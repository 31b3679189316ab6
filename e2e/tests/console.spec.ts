// The console as an operator sees it: live state over the WebSocket, and a
// connection that recovers by itself.
import { expect, test } from '../fixtures/canary';

test('shows the rollout and follows upstream health live', async ({ dashboard, setup }, testInfo) => {
  await expect(dashboard.connection).toHaveText('Live');
  await expect(dashboard.statusLine).toHaveText('Production only (100 %)');
  await expect(dashboard.version('production')).toHaveText('v2.6.0');
  await expect(dashboard.share('production')).toHaveText('100 %');
  await expect(dashboard.share('canary')).toHaveText('0 %');
  await expect(dashboard.health('production')).toHaveText('Healthy');
  await expect(dashboard.healthDetail('production')).toHaveText('HTTP 200 from /healthz');
  await expect(dashboard.health('canary')).toHaveText('Stopped');
  // No controller yet: the actions are disabled and the server's reason is shown.
  await expect(dashboard.action('start')).toBeDisabled();
  await expect(dashboard.actionsReason).toContainText('deployment controller');
  await expect(dashboard.page).toHaveTitle('Production only (100 %) · canary');
  await dashboard.screenshot(testInfo, 'idle');

  // The production service starts failing its health checks: the card changes
  // without a reload, driven by the WebSocket stream.
  setup.production.setHealth(503);
  await expect(dashboard.health('production')).toHaveText('Unhealthy');
  await expect(dashboard.healthDetail('production')).toHaveText('HTTP 503 from /healthz');
  await dashboard.screenshot(testInfo, 'production-unhealthy');

  setup.production.setHealth(200);
  await expect(dashboard.health('production')).toHaveText('Healthy');
});

test('marks data stale while the server is away and refreshes when it is back', async ({ dashboard, setup }, testInfo) => {
  await expect(dashboard.connection).toHaveText('Live');
  await expect(dashboard.health('production')).toHaveText('Healthy');

  await setup.server.stop();
  await expect(dashboard.connection).toContainText('Reconnecting');
  await expect(dashboard.staleNote).toHaveText('Not live: showing the last known state');
  await expect(dashboard.page).toHaveTitle(/^\(offline\)/);
  await dashboard.screenshot(testInfo, 'reconnecting');

  // While the server was away production broke; the fresh snapshot must show it.
  setup.production.setHealth(500);
  await setup.server.start();
  await expect(dashboard.connection).toHaveText('Live', { timeout: 30_000 });
  await expect(dashboard.staleNote).toBeEmpty();
  await expect(dashboard.health('production')).toHaveText('Unhealthy');
  await expect(dashboard.healthDetail('production')).toHaveText('HTTP 500 from /healthz');
});
