// Shadow traffic seen from the console: before any user is served by it,
// the canary gets copies of production's requests; one that answers
// differently fails at the shadow step, and the panel shows what differed.
import { test, expect } from '../fixtures/canary';

test.use({
  // Bodies compared byte for byte: the fake services answer `hello from <version>`.
  extraConfig: 'validation:\n  shadow: { share: 100, duration: 10m, compare_body: exact }\n',
  rollout: {
    safetyChecks: [
      '{ name: "Total Latency", metric: "p95_latency_ms", threshold: 1000, alert_level: "critical" }',
      '{ name: "Same answers", metric: "shadow_mismatch_rate", threshold: 0.05, alert_level: "critical" }',
    ],
  },
});

test('a canary answering differently fails at the shadow step, having served no one', async ({ page, setup, dashboard }, testInfo) => {
  await expect(dashboard.connection).toHaveText('Live');
  const panel = page.getByTestId('validation');
  await expect(panel).toBeVisible();
  // Before any rollout the check waits for its step.
  await expect(page.getByTestId('safety-checks').locator('li').filter({ hasText: 'Same answers' })).toContainText('Not now');
  await dashboard.startCanary('v2.7.0', '25');
  await expect(dashboard.statusLine).toContainText('Shadow traffic: v2.7.0 gets copies of 100 %', { timeout: 20_000 });
  await expect(panel).toContainText('Copying');

  const served = await setup.server.sendTraffic(60);
  expect(served).toEqual({ 'v2.6.0': 60 });
  await expect(dashboard.statusLine).toContainText(
    'Failed: on shadow traffic, before any user was served: Same answers: shadow mismatch rate 100 % > 5 %',
    { timeout: 20_000 },
  );
  await expect(dashboard.share('canary')).toHaveText('0 %');
  await expect(page.getByTestId('steps')).toContainText(/Shadow traffic 100 %.*Failed/);
  await expect(panel).toContainText('Not copying');
  await expect(panel).toContainText(/Mismatched\s*[2-6][0-9]/);
  const example = page.getByTestId('shadow-examples').locator('li').first();
  await expect(example).toContainText('GET /');
  await expect(example).toContainText('production 200 · canary 200');
  await expect(example).toContainText('bodies differ at byte 14');
  await expect(dashboard.auditEntries.filter({ hasText: 'Shadow failed' }).first()).toContainText('before any user was served');
  await panel.scrollIntoViewIfNeeded();
  await dashboard.screenshot(testInfo, 'shadow-failed');
});
