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
